"""The event-log contract: the one set of tables that offline replay and online logs share.

A dataset is a folder with one sub-folder of parquet files per table (``sessions/``,
``impressions/``, ...) or a duckdb database with tables of the same names. The simulator
writes exactly these tables; online A/B logs are imported into them with a column mapping.
Every column is documented here and, from here, in the README (``abplatform contract``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    nullable: bool
    doc: str


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    required: bool = True

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


SESSIONS = Table(
    "sessions",
    "One row per search session (a query and the page of results shown for it).",
    (
        Column("session_id", pa.int64(), False, "Unique session id."),
        Column("unit_id", pa.string(), False, "Randomisation unit (the user id)."),
        Column("ts", TIMESTAMP, False, "Time the query was issued (UTC)."),
        Column("query", pa.string(), False, "Query text as typed."),
        Column("query_segment", pa.string(), False, "Query frequency band: head, torso or tail."),
        Column(
            "query_complexity",
            pa.string(),
            False,
            "simple (one category word), attribute (category + attribute), "
            "multi (several constraints or a price limit) or indirect (category word absent).",
        ),
        Column("is_new_user", pa.bool_(), False, "True for units new to the product in the experiment window (no pre-period history)."),
        Column("arm", pa.string(), True, "Arm the unit was assigned to; null in logs that carry no arm."),
    ),
    key=("session_id",),
)

IMPRESSIONS = Table(
    "impressions",
    "One row per item shown on a session's result page.",
    (
        Column("session_id", pa.int64(), False, "Session the page belongs to (sessions.session_id)."),
        Column("position", pa.int16(), False, "1-based rank on the page (1..k)."),
        Column("item_id", pa.int64(), False, "Item shown (items.item_id)."),
        Column("clicked", pa.bool_(), False, "The user clicked the item."),
        Column("purchased", pa.bool_(), False, "The user bought the item (implies clicked)."),
        Column("orders", pa.int32(), False, "Orders placed for the item (0 unless purchased, >= 1 if purchased)."),
        Column("revenue", pa.float64(), False, "Revenue from those orders (>= 0)."),
        Column(
            "propensity",
            pa.float64(),
            True,
            "Logging policy's marginal probability of showing this item at this position; null where unknown.",
        ),
    ),
    key=("session_id", "position"),
)

CANDIDATES = Table(
    "candidates",
    "Retrieval candidate set of each session: the items a ranker may order (needed only for replay).",
    (
        Column("session_id", pa.int64(), False, "Session (sessions.session_id)."),
        Column("item_id", pa.int64(), False, "Candidate item (items.item_id)."),
    ),
    key=("session_id", "item_id"),
    required=False,
)

ITEMS = Table(
    "items",
    "The catalog: what a ranker may know about an item.",
    (
        Column("item_id", pa.int64(), False, "Unique item id."),
        Column("title", pa.string(), False, "Item title (searchable text)."),
        Column("category", pa.string(), False, "Leaf category."),
        Column("parent_category", pa.string(), False, "Top-level category."),
        Column("brand", pa.string(), False, "Brand."),
        Column("colour", pa.string(), False, "Colour."),
        Column("material", pa.string(), False, "Material."),
        Column("style", pa.string(), False, "Style or occasion."),
        Column("price", pa.float64(), False, "Price (> 0)."),
    ),
    key=("item_id",),
    required=False,
)

RELEVANCE_LABELS = Table(
    "relevance_labels",
    "Manual query-item relevance judgements.",
    (
        Column("query", pa.string(), False, "Query text (sessions.query)."),
        Column("item_id", pa.int64(), False, "Item judged."),
        Column("grade", pa.int8(), False, "Relevance grade 0 (off-topic) .. 3 (exact match)."),
    ),
    key=("query", "item_id"),
    required=False,
)

PAGE_LABELS = Table(
    "page_labels",
    "Manual good/bad judgements of whole result pages.",
    (
        Column("session_id", pa.int64(), False, "Session whose page was judged."),
        Column("good", pa.bool_(), False, "The judge rated the page good."),
    ),
    key=("session_id",),
    required=False,
)

PRE_SESSIONS = Table("pre_sessions", "Pre-period sessions of the same units (same columns as sessions).",
                     SESSIONS.columns, SESSIONS.key, required=False)
PRE_IMPRESSIONS = Table("pre_impressions", "Pre-period impressions (same columns as impressions).",
                        IMPRESSIONS.columns, IMPRESSIONS.key, required=False)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (SESSIONS, IMPRESSIONS, CANDIDATES, ITEMS, RELEVANCE_LABELS, PAGE_LABELS, PRE_SESSIONS, PRE_IMPRESSIONS)
}

SEGMENTS = ("head", "torso", "tail")
COMPLEXITIES = ("simple", "attribute", "multi", "indirect")
MAX_GRADE = 3


def markdown_table() -> str:
    """The contract as Markdown, for the README."""
    lines: list[str] = []
    for t in TABLES.values():
        if t.name.startswith("pre_"):
            continue
        req = "required" if t.required else "optional"
        lines += [f"#### `{t.name}` ({req}; key: {', '.join(t.key)})", "", t.doc, "",
                  "| column | type | nullable | meaning |", "|---|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {c.doc} |" for c in t.columns]
        lines.append("")
    lines.append("`pre_sessions` and `pre_impressions` (optional) have the columns of `sessions` and "
                 "`impressions` and hold the same units' pre-period activity (CUPED covariates, ranker training).")
    return "\n".join(lines)
