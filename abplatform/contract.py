"""The event-log contract: the one set of tables that offline replay and online logs share.

A dataset is a folder with one sub-folder of parquet files per table (``sessions/``,
``impressions/``, ...) or a duckdb database with tables of the same names. The simulator
writes exactly these tables; online A/B logs are imported into them with a column mapping.
Every column is documented here and, from here, in the README (``abplatform contract``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

# the catalog's attribute columns, in the order rankers and the world encode them
ATTRIBUTE_NAMES = ("brand", "colour", "material", "style")


def arrow_type(name: str) -> pa.DataType:
    """The pyarrow type a contract type name stands for (``str()`` of it gives the name back)."""
    import pyarrow as pa

    if name == "timestamp[us, tz=UTC]":
        return pa.timestamp("us", tz="UTC")
    return pa.type_for_alias(name)


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str  # the Arrow type's name; the contract is readable without importing pyarrow
    nullable: bool
    doc: str

    @property
    def type(self) -> pa.DataType:
        return arrow_type(self.type_name)


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    required: bool = True

    @property
    def schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


SESSIONS = Table(
    "sessions",
    "One row per search session (a query and the page of results shown for it).",
    (
        Column("session_id", "int64", False, "Unique session id."),
        Column("unit_id", "string", False, "Randomisation unit (the user id)."),
        Column("ts", "timestamp[us, tz=UTC]", False, "Time the query was issued (UTC)."),
        Column("query", "string", False, "Query text as typed."),
        Column("query_segment", "string", False, "Query frequency band: head, torso or tail."),
        Column(
            "query_complexity",
            "string",
            False,
            "simple (one category word), attribute (category + attribute), "
            "multi (several constraints or a price limit) or indirect (category word absent).",
        ),
        Column("is_new_user", "bool", False,
               "True for units new to the product in the experiment window (no pre-period history)."),
        Column("arm", "string", True, "Arm the unit was assigned to; null in logs that carry no arm."),
    ),
    key=("session_id",),
)

IMPRESSIONS = Table(
    "impressions",
    "One row per item shown on a session's result page.",
    (
        Column("session_id", "int64", False, "Session the page belongs to (sessions.session_id)."),
        Column("position", "int16", False, "1-based rank on the page (1..k)."),
        Column("item_id", "int64", False, "Item shown (items.item_id)."),
        Column("clicked", "bool", False, "The user clicked the item."),
        Column("purchased", "bool", False, "The user bought the item (implies clicked)."),
        Column("orders", "int32", False, "Orders placed for the item (0 unless purchased, >= 1 if purchased)."),
        Column("revenue", "double", False, "Revenue from those orders (>= 0)."),
        Column(
            "propensity",
            "double",
            True,
            "Logging policy's marginal probability of showing this item at this position; null where unknown.",
        ),
        Column("team", "string", True,
               "Interleaved logs: the arm whose team (team-draft) placed the item; null when not interleaved."),
    ),
    key=("session_id", "position"),
)

CANDIDATES = Table(
    "candidates",
    "Retrieval candidate set of each session: the items a ranker may order (needed only for replay).",
    (
        Column("session_id", "int64", False, "Session (sessions.session_id)."),
        Column("item_id", "int64", False, "Candidate item (items.item_id)."),
    ),
    key=("session_id", "item_id"),
    required=False,
)

ITEMS = Table(
    "items",
    "The catalog: what a ranker may know about an item.",
    (
        Column("item_id", "int64", False, "Unique item id."),
        Column("title", "string", False, "Item title (searchable text)."),
        Column("category", "string", False, "Leaf category."),
        Column("parent_category", "string", False, "Top-level category."),
        Column("brand", "string", False, "Brand."),
        Column("colour", "string", False, "Colour."),
        Column("material", "string", False, "Material."),
        Column("style", "string", False, "Style or occasion."),
        Column("price", "double", False, "Price (> 0)."),
    ),
    key=("item_id",),
    required=False,
)

RELEVANCE_LABELS = Table(
    "relevance_labels",
    "Manual query-item relevance judgements.",
    (
        Column("query", "string", False, "Query text (sessions.query)."),
        Column("item_id", "int64", False, "Item judged."),
        Column("grade", "int8", False, "Relevance grade 0 (off-topic) .. 3 (exact match)."),
    ),
    key=("query", "item_id"),
    required=False,
)

PAGE_LABELS = Table(
    "page_labels",
    "Manual good/bad judgements of whole result pages.",
    (
        Column("session_id", "int64", False, "Session whose page was judged."),
        Column("good", "bool", False, "The judge rated the page good."),
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
        lines += [f"| `{c.name}` | {c.type_name} | {'yes' if c.nullable else 'no'} | {c.doc} |" for c in t.columns]
        lines.append("")
    lines.append("`pre_sessions` and `pre_impressions` (optional) have the columns of `sessions` and "
                 "`impressions` and hold the same units' pre-period activity (CUPED covariates, ranker training).")
    return "\n".join(lines)
