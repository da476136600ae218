"""Contract profiles: the columns a dataset must have are those its experiment uses.

The event-log contract (:mod:`abplatform.contract`) names every column the platform can use; an
experiment needs only some. A log with ``session_id, unit_id, position, item_id, clicked`` (and
``arm`` online) is enough for item CTR; ``purchased`` is needed by buyer conversion, ``query`` by
the relevance metric and the rankers, ``ts`` by sequential testing (without it there are no daily
looks), and so on.
:func:`experiment_profile` lists, for one experiment, each required ``(table, column)`` with what
needs it — the validation names that in its error. Columns not required may be absent: the
dataset's views read them as NULL and nothing uses them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlglot import exp

from abplatform.contract import TABLES
from abplatform.expressions import IMPRESSION_COLUMNS, parse_expression
from abplatform.vocabulary import unit_column

if TYPE_CHECKING:
    from abplatform.config import Experiment

#: (table, column) -> what needs it
Profile = dict[tuple[str, str], str]

#: Built-in metric -> the contract columns (table, column) it reads.
METRIC_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "item_ctr": (("impressions", "clicked"),),
    "buyer_conversion": (("impressions", "purchased"),),
    "order_volume": (("impressions", "orders"),),
    "page_good_rate": (),  # the page_labels table (optional: no labels, no judged pages)
    "relevance": (("sessions", "query"),),
}
#: Built-in segment -> its sessions column.
SEGMENT_SOURCE = {"query_segment": "query_segment", "query_complexity": "query_complexity",
                  "user_type": "is_new_user"}
#: What needs every column when a log is held to the whole contract (no experiment).
FULL_CONTRACT = "the event-log contract"


def full_profile() -> Profile:
    """Every non-nullable contract column: what ``check-data DIR`` holds a log to without an experiment."""
    return {(t.name, c.name): FULL_CONTRACT for t in TABLES.values() for c in t.columns if not c.nullable}


def _columns(text: str) -> Iterator[exp.Column]:
    return parse_expression(text).find_all(exp.Column)


def _metric_columns(exp: Experiment) -> Iterator[tuple[tuple[str, str], str]]:
    """The columns each configured metric reads: a built-in's, or those its expressions name."""
    for mc in exp.metrics:
        for table, column in METRIC_COLUMNS.get(mc.name, ()):
            yield (table, column), f"metric {mc.name}"
        for agg in (mc.numerator, mc.denominator):
            for text in (agg.column, agg.filter) if agg is not None else ():
                for col in (c.name for c in _columns(text)) if text else ():
                    yield ("impressions" if col in IMPRESSION_COLUMNS else "sessions", col), f"metric {mc.name}"


def experiment_profile(exp: Experiment) -> Profile:
    """The contract columns ``exp`` reads, each with the first thing that needs it."""
    need: Profile = {}

    def add(table: str, column: str, why: str) -> None:
        need.setdefault((table, column), why)

    for table, column in (("sessions", "session_id"), ("impressions", "session_id"), ("impressions", "position"),
                          ("impressions", "item_id")):
        add(table, column, "the contract's keys")
    unit = exp.randomisation.unit
    unit_col = unit_column(unit)
    if unit_col:  # a column of the sessions table (the contract's, or one the log adds)
        add("sessions", unit_col, f"randomisation.unit: {unit}")
    if exp.data.mode == "online":
        add("sessions", "arm", "an online A/B log (data.mode: online)")
    else:
        for table, column in (("sessions", "query"), ("sessions", "ts"), ("impressions", "clicked"),
                              ("impressions", "purchased"), ("impressions", "orders"),
                              ("impressions", "revenue")):
            add(table, column, "the offline replay (rankers and simulated users are fitted on it)")
    for (table, column), why in _metric_columns(exp):
        add(table, column, why)
    for seg in exp.segments if "segments" in exp.model_fields_set else ():
        if seg in SEGMENT_SOURCE:
            add("sessions", SEGMENT_SOURCE[seg], f"segment {seg}")
    if exp.interleaving is not None and exp.data.mode == "online":
        add("impressions", "team", "interleaving (an interleaved log credits clicks to teams)")
        add("impressions", "clicked", "interleaving")
    if exp.offline_policy is not None:
        add("impressions", "propensity", "offline_policy (importance weights)")
        add("impressions", "clicked", "offline_policy (the reward)")
    if exp.statistics.sequential is not None:
        add("sessions", "ts", "statistics.sequential (its looks are days)")
    return need
