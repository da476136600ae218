"""The metrics SQL (duckdb dialect, portable subset) transpiled for Spark SQL with sqlglot.

sqlglot does the dialect translation; :func:`to_spark` adds the rewrites it does not do (each
trap below was seen with sqlglot 30 and Spark 4.3):

- ``quantile_cont(x, p)`` (duckdb's interpolated percentile, used by percentile capping) comes
  out of sqlglot as ``PERCENTILE_CONT(x, p)``, which Spark rejects; it is rewritten to Spark's
  ``percentile(x, p)``, the same linear-interpolation estimator.
- ``a / b``: on division by zero duckdb 2 returns inf / NaN, Spark's ANSI mode throws. Every
  divisor that is not already ``NULLIF(..., 0)`` or a non-zero literal is wrapped in
  ``NULLIF(b, 0)`` on Spark, so Spark runs and agrees with duckdb wherever the divisor is not
  zero; where it is zero, Spark gives NULL and duckdb inf / NaN. SQL that must agree there too
  writes ``a / NULLIF(b, 0)`` itself (NULL on both engines, as ``sql/04_long_tail.sql``'s Gini does).
- ``SUM`` over a BOOLEAN errors on Spark: the SQL in ``sql/`` already casts booleans first, and
  :func:`check_portable` rejects a ``SUM`` whose argument is a bare boolean comparison.
- Sums past 2^63: duckdb widens integer sums to 128 bits, Spark (ANSI) throws on overflow. The SQL
  only sums integers within one session (stage 1) or one unit (stage 2); every sum across units
  (stage 3) is over DOUBLE, so neither engine can overflow. ANSI mode is left on, so an
  overflow would fail loudly rather than wrap.
- ``hash()`` differs between engines: arm assignment is computed once in Python
  (:mod:`abplatform.assignment`) and stored in ``sessions.arm``; the SQL never hashes.
- ``QUALIFY ... LIMIT`` and ordered ``list()`` transpile to wrong results: :func:`check_portable`
  rejects them so they cannot creep into ``sql/``.
- NULL ordering: duckdb sorts NULLs last, Spark first; sqlglot makes ``NULLS LAST`` explicit.

Table names can be remapped (``tables``) so several engines can share one Spark session.
"""

from __future__ import annotations

from functools import lru_cache

import sqlglot
from sqlglot import exp

READ, WRITE = "duckdb", "spark"


class NotPortableError(ValueError):
    """The SQL uses a construct that does not give the same result on duckdb and Spark."""


def check_portable(tree: exp.Expr) -> None:
    for node in tree.walk():
        if isinstance(node, exp.Qualify):
            raise NotPortableError("QUALIFY is not portable (transpiles to different results on Spark)")
        if isinstance(node, (exp.ArrayAgg,)) and node.find(exp.Order):
            raise NotPortableError("ordered list()/array_agg() is not portable (Spark loses the order)")
        if isinstance(node, exp.Sum) and isinstance(node.this, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
                                                                  exp.And, exp.Or, exp.Not, exp.Boolean)):
            raise NotPortableError(f"SUM over a boolean ({node.sql(READ)}): cast it to BIGINT first")


def _safe_divisor(d: exp.Expr) -> bool:
    while isinstance(d, exp.Paren):
        d = d.this
    if isinstance(d, exp.Nullif):
        return True
    return isinstance(d, exp.Literal) and not d.is_string and float(d.this) != 0


def _rewrite(node: exp.Expr, tables: dict[str, str]) -> exp.Expr:
    if isinstance(node, (exp.Quantile, exp.PercentileCont)):
        # duckdb quantile_cont(x, p) parses as Quantile/PercentileCont(this=x, quantile=p)
        q = node.args.get("quantile") or node.args.get("expression")
        assert q is not None, node.sql()  # the parser sets one or the other
        return exp.Anonymous(this="percentile", expressions=[node.this.copy(), q.copy()])
    if isinstance(node, exp.Div) and not _safe_divisor(node.expression):
        node.set("expression", exp.Nullif(this=node.expression.copy(), expression=exp.Literal.number(0)))
        return node
    if isinstance(node, exp.Table) and tables and not node.args.get("db") and node.name in tables:
        node.set("this", exp.to_identifier(tables[node.name]))
        return node
    return node


@lru_cache(maxsize=512)
def _to_spark(sql: str, tables: tuple[tuple[str, str], ...]) -> str:
    trees = sqlglot.parse(sql, read=READ)
    if len(trees) != 1 or trees[0] is None:
        raise NotPortableError(f"expected one SQL statement, got {len(trees)}")
    tree = trees[0]
    check_portable(tree)
    mapping = dict(tables)
    tree = tree.transform(lambda n: _rewrite(n, mapping))
    return tree.sql(dialect=WRITE, comments=False)


def to_spark(sql: str, tables: dict[str, str] | None = None) -> str:
    """``sql`` (duckdb dialect) as Spark SQL, with the rewrites above and table names remapped."""
    return _to_spark(sql, tuple(sorted((tables or {}).items())))
