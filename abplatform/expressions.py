"""Filters and metric columns from experiment files: parsed with sqlglot, never pasted as SQL.

An expression may contain only columns of the event-log contract (``sessions`` and
``impressions``), literals, comparisons, arithmetic, ``IN`` / ``BETWEEN`` / ``IS [NOT] NULL``
and boolean operators. Anything else — sub-queries, function calls (``read_csv(...)``), several
statements (``;``) — is rejected with a message that names it. Accepted expressions are
re-generated from the syntax tree with every column qualified by its table alias, so what
reaches the database is exactly what was checked.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from abplatform.contract import IMPRESSIONS, SESSIONS
from abplatform.vocabulary import did_you_mean

SESSION_COLUMNS = {c.name for c in SESSIONS.columns}
IMPRESSION_COLUMNS = {c.name for c in IMPRESSIONS.columns}

_ALLOWED = (
    exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.Neg,
    exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
    exp.In, exp.Between, exp.Is, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Tuple,
)


class ExpressionError(ValueError):
    pass


def parse_expression(text: str, allowed_columns: set[str] | None = None) -> exp.Expr:
    """Parse and check one expression; raise :class:`ExpressionError` saying what is not allowed."""
    allowed_columns = allowed_columns if allowed_columns is not None else SESSION_COLUMNS | IMPRESSION_COLUMNS
    try:
        statements = sqlglot.parse(text, dialect="duckdb")
    except sqlglot.errors.SqlglotError as e:
        raise ExpressionError(f"cannot parse {text!r}: {str(e).splitlines()[0]}") from None
    trees = [s for s in statements if s is not None]
    if len(trees) != 1:
        raise ExpressionError(f"{text!r} must be one expression (no ';' or several statements)")
    tree = trees[0]
    for node in tree.walk():
        if isinstance(node, (exp.Subquery, exp.Select, exp.Query)):
            raise ExpressionError(f"{text!r}: sub-queries are not allowed")
        if isinstance(node, exp.Func) and not isinstance(node, _ALLOWED):
            name = node.sql_name() if hasattr(node, "sql_name") else type(node).__name__
            raise ExpressionError(f"{text!r}: function calls are not allowed (found {name})")
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"{text!r}: {type(node).__name__.lower()} is not allowed "
                                  "(only columns, literals, comparisons, arithmetic and AND/OR/NOT)")
        if isinstance(node, exp.Column):
            if node.table:
                raise ExpressionError(f"{text!r}: write columns without a table name ({node.sql()})")
            if node.name not in allowed_columns:
                raise ExpressionError(f"{text!r}: unknown column {node.name!r}"
                                      + did_you_mean(node.name, allowed_columns)
                                      + f"; allowed: {', '.join(sorted(allowed_columns))}")
    return tree


def to_sql(tree: exp.Expr, impression_alias: str = "i", session_alias: str = "sq") -> str:
    """The checked expression as duckdb SQL, columns qualified (impression columns win on overlap)."""
    def qualify(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column):
            alias = impression_alias if node.name in IMPRESSION_COLUMNS else session_alias
            return exp.column(node.name, table=alias)
        return node

    return tree.copy().transform(qualify).sql(dialect="duckdb")
