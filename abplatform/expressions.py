"""Filters and metric columns from experiment files: parsed with sqlglot, never pasted as SQL.

An expression may contain only columns of the event-log contract (``sessions`` and
``impressions``), literals, comparisons, arithmetic, ``IN`` / ``BETWEEN`` / ``IS [NOT] NULL``
and boolean operators. Anything else — sub-queries, function calls (``read_csv(...)``), several
statements (``;``) — is rejected with a message that names it. Accepted expressions are
re-generated from the syntax tree with every column qualified by its table alias, so what
reaches the database is exactly what was checked.

Expressions are bounded before they are parsed (characters, tokens, parentheses) and after (nodes,
depth), so neither the parser nor the database runs out of stack; and they are type-checked against
the contract's column types (:func:`check_expression`): what ``validate`` accepts, the run can run.
"""

from __future__ import annotations

import itertools
import math
import re
from datetime import datetime

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


#: Limits of one expression: checked on the text and tokens before parsing, and on the tree after.
MAX_CHARS = 1000
MAX_TOKENS = 300
MAX_PARENS = 20  # nested parentheses (sqlglot's parser recurses ~20 frames per level)
MAX_NODES = 200
MAX_DEPTH = 50


class ExpressionError(ValueError):
    pass


def _shorten(text: str, n: int = 60) -> str:
    return repr(text) if len(text) <= n else repr(text[:n]) + "…"


def _check_size(text: str) -> None:
    """Bound the text before the (recursive) parser sees it."""
    if len(text) > MAX_CHARS:
        raise ExpressionError(f"{_shorten(text)} is too long ({len(text):,} characters; at most {MAX_CHARS:,})")
    try:
        tokens = sqlglot.tokenize(text, dialect="duckdb")
    except sqlglot.errors.SqlglotError as e:
        raise ExpressionError(f"cannot parse {_shorten(text)}: {str(e).splitlines()[0]}") from None
    if len(tokens) > MAX_TOKENS:
        raise ExpressionError(f"{_shorten(text)} is too long ({len(tokens):,} terms; at most {MAX_TOKENS})")
    depth = deepest = 0
    for t in tokens:
        depth += (t.token_type == sqlglot.TokenType.L_PAREN) - (t.token_type == sqlglot.TokenType.R_PAREN)
        deepest = max(deepest, depth)
    if deepest > MAX_PARENS:
        raise ExpressionError(f"{_shorten(text)} is too deeply nested ({deepest} levels of parentheses; "
                              f"at most {MAX_PARENS})")


def _check_tree_size(text: str, tree: exp.Expr) -> None:
    nodes, deepest = 0, 0
    stack = [(tree, 1)]
    while stack:  # iterative: the tree may be deeper than Python's stack
        node, depth = stack.pop()
        if isinstance(node, exp.Identifier):
            continue
        nodes += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.iter_expressions())
    if nodes > MAX_NODES:
        raise ExpressionError(f"{_shorten(text)} is too long ({nodes:,} parts; at most {MAX_NODES})")
    if deepest > MAX_DEPTH:
        raise ExpressionError(f"{_shorten(text)} is too deeply nested ({deepest} levels; at most {MAX_DEPTH})")


def _parse_one(text: str, sized: bool = False) -> exp.Expr:
    """The one expression ``text`` holds, bounded before and after parsing (``sized``: the text was checked)."""
    if not sized:
        _check_size(text)
    try:
        statements = sqlglot.parse(text, dialect="duckdb")
    except sqlglot.errors.SqlglotError as e:
        raise ExpressionError(f"cannot parse {_shorten(text)}: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise ExpressionError(f"{_shorten(text)} is too deeply nested") from None
    trees = [s for s in statements if s is not None]
    if len(trees) != 1:
        raise ExpressionError(f"{text!r} must be one expression (no ';' or several statements)")
    _check_tree_size(text, trees[0])
    return trees[0]


def parse_expression(text: str, allowed_columns: set[str] | None = None) -> exp.Expr:
    """Parse and check one expression; raise :class:`ExpressionError` saying what is not allowed."""
    allowed_columns = allowed_columns if allowed_columns is not None else SESSION_COLUMNS | IMPRESSION_COLUMNS
    tree = _parse_one(text)
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


# --- types -------------------------------------------------------------------------------------

NUMBER, BOOLEAN, STRING, TIMESTAMP, NULL = "number", "true/false", "string", "timestamp", "null"
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div)
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_TIMESTAMP_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?")


def _type_of_arrow(type_name: str) -> str:
    if type_name == "bool":
        return BOOLEAN
    if type_name == "string":
        return STRING
    if type_name.startswith("timestamp"):
        return TIMESTAMP
    return NUMBER  # int8 .. int64, float, double


#: Every contract column of the sessions and impressions tables -> its expression type
#: (impression columns win on overlap, as in :func:`to_sql`).
COLUMN_TYPES: dict[str, str] = {c.name: _type_of_arrow(c.type_name) for c in (*SESSIONS.columns, *IMPRESSIONS.columns)}


def _describe(node: exp.Expr, kind: str) -> str:
    sql = node.sql(dialect="duckdb")
    if isinstance(node, exp.Column):
        return f"{sql!r} is a {kind} column"
    if isinstance(node, exp.Literal):
        return f"{sql} is a {kind}"
    return f"{sql!r} is a {kind}"


def _is_timestamp_text(node: exp.Expr) -> bool:
    if not (isinstance(node, exp.Literal) and node.is_string and _TIMESTAMP_TEXT.fullmatch(node.this)):
        return False
    try:
        datetime.fromisoformat(node.this.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _comparable(a: exp.Expr, ta: str, b: exp.Expr, tb: str) -> bool:
    if NULL in (ta, tb) or ta == tb:
        return ta != TIMESTAMP or tb != STRING or _is_timestamp_text(b)
    if {ta, tb} == {TIMESTAMP, STRING}:  # duckdb casts a literal like '2024-05-01' to a timestamp
        return _is_timestamp_text(b if tb == STRING else a)
    return False


def _need_comparable(left: exp.Expr, tl: str, right: exp.Expr, tr: str, what: str) -> None:
    if _comparable(left, tl, right, tr):
        return
    if TIMESTAMP in (tl, tr) and STRING in (tl, tr):
        text = right if tr == STRING else left
        raise ExpressionError(f"{what}: {text.sql(dialect='duckdb')} is not a timestamp "
                              "(write it as 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS')")
    raise ExpressionError(f"{what}: cannot compare {_describe(left, tl).split(' is a ')[0]} ({tl}) "
                          f"with {_describe(right, tr).split(' is a ')[0]} ({tr})")


def _need(node: exp.Expr, want: tuple[str, ...], why: str) -> str:
    t = infer_type(node)
    if t not in want and t != NULL:
        raise ExpressionError(f"{_describe(node, t)}; {why}")
    return t


def _literal_type(node: exp.Literal) -> str:
    if node.is_string:
        return STRING
    try:
        value = float(node.this)
    except ValueError:
        raise ExpressionError(f"{node.sql()} is not a number") from None
    if not math.isfinite(value):
        raise ExpressionError(f"{node.sql()} is too large a number (not finite)")
    return NUMBER


def _boolean_op(node: exp.Expr) -> str:
    for operand in node.iter_expressions():
        _need(operand, (BOOLEAN,), f"{node.key.upper()} combines conditions (true/false)")
    return BOOLEAN


def _arithmetic(node: exp.Expr) -> str:
    sign = {"add": "+", "sub": "-", "mul": "*", "div": "/", "neg": "unary -"}[node.key]
    for operand in node.iter_expressions():
        _need(operand, (NUMBER,), f"arithmetic ({sign}) needs numbers")
    return NUMBER


def _comparison(node: exp.Expr) -> str:
    left, right = node.this, node.expression
    _need_comparable(left, infer_type(left), right, infer_type(right), repr(node.sql(dialect="duckdb")))
    return BOOLEAN


def _is(node: exp.Expr) -> str:
    right = node.expression
    if not isinstance(right, (exp.Null, exp.Boolean)):
        raise ExpressionError(f"{node.sql(dialect='duckdb')!r}: IS takes only NULL, TRUE or FALSE "
                              "(use = to compare values)")
    if isinstance(right, exp.Boolean):
        _need(node.this, (BOOLEAN,), "IS TRUE / IS FALSE tests a condition (true/false)")
    else:
        infer_type(node.this)
    return BOOLEAN


def _between(node: exp.Expr) -> str:
    this = node.this
    t = infer_type(this)
    for bound in (node.args["low"], node.args["high"]):
        _need_comparable(this, t, bound, infer_type(bound), repr(node.sql(dialect="duckdb")))
    return BOOLEAN


def _in(node: exp.Expr) -> str:
    this = node.this
    t = infer_type(this)
    if not node.expressions:
        raise ExpressionError(f"{node.sql(dialect='duckdb')!r}: IN needs a list of values")
    for item in node.expressions:
        _need_comparable(this, t, item, infer_type(item), repr(node.sql(dialect="duckdb")))
    return BOOLEAN


def infer_type(node: exp.Expr) -> str:
    """The type of a checked expression (number, true/false, string, timestamp or null), raising
    :class:`ExpressionError` where an operator gets operands it cannot take."""
    if isinstance(node, exp.Paren):
        return infer_type(node.this)
    if isinstance(node, exp.Column):
        return COLUMN_TYPES.get(node.name, NULL)
    if isinstance(node, exp.Literal):
        return _literal_type(node)
    if isinstance(node, exp.Boolean):
        return BOOLEAN
    if isinstance(node, exp.Null):
        return NULL
    if isinstance(node, exp.Tuple):
        raise ExpressionError(f"{node.sql(dialect='duckdb')!r}: tuples (a, b) are not allowed")
    for kinds, rule in (((exp.And, exp.Or, exp.Not), _boolean_op), ((*_ARITHMETIC, exp.Neg), _arithmetic),
                        (_COMPARISONS, _comparison), ((exp.Is,), _is), ((exp.Between,), _between),
                        ((exp.In,), _in)):
        if isinstance(node, kinds):
            return rule(node)
    raise ExpressionError(f"{node.sql(dialect='duckdb')!r}: {node.key} is not allowed")


def check_expression(text: str, role: str) -> exp.Expr:
    """Parse ``text`` (:func:`parse_expression`) and check its type for its ``role``: ``"column"``,
    the value a metric sums or maxes (a number, or true/false counted as 1/0), or ``"filter"``,
    a condition (true/false)."""
    tree = parse_expression(text)
    try:
        t = infer_type(tree)
    except RecursionError:  # bounded by MAX_DEPTH; a fallback, never a traceback
        raise ExpressionError(f"{_shorten(text)} is too deeply nested") from None
    if role == "filter" and t != BOOLEAN:
        raise ExpressionError(f"{_describe(tree, t)}; a filter is a condition (true/false), "
                              "e.g. position <= 3 or query_segment = 'tail'")
    if role == "column" and t not in (NUMBER, BOOLEAN):
        raise ExpressionError(f"{_describe(tree, t)}; a metric sums numbers or true/false")
    return tree


def to_sql(tree: exp.Expr, impression_alias: str = "i", session_alias: str = "sq") -> str:
    """The checked expression as duckdb SQL, columns qualified (impression columns win on overlap).

    Integer columns and literals inside arithmetic are computed as DOUBLE, so ``orders * 100000 * 100000``
    cannot overflow an INT32 in the database (comparisons keep the columns' own types)."""
    def qualify(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column):
            alias = impression_alias if node.name in IMPRESSION_COLUMNS else session_alias
            return exp.column(node.name, table=alias)
        return node

    def widen(node: exp.Expr) -> exp.Expr:
        if isinstance(node, (*_ARITHMETIC, exp.Neg)):
            for key in ("this", "expression"):
                operand = node.args.get(key)
                inner = operand.unnest() if isinstance(operand, exp.Expr) else None
                if isinstance(inner, (exp.Column, exp.Literal)) and not inner.is_string:
                    inner.replace(exp.cast(inner.copy(), "DOUBLE"))
        return node

    return tree.copy().transform(qualify).transform(widen).sql(dialect="duckdb")


# --- mapping expressions ------------------------------------------------------------------------

#: The functions a mapping expression may call (sqlglot node types), each portable to Spark SQL.
MAPPING_FUNCTIONS: dict[type[exp.Expr], str] = {
    exp.Concat: "concat", exp.Coalesce: "coalesce", exp.Lower: "lower", exp.Upper: "upper", exp.Trim: "trim",
    exp.Abs: "abs", exp.Round: "round", exp.Floor: "floor", exp.Ceil: "ceil", exp.Substring: "substring",
    exp.Length: "length", exp.Greatest: "greatest", exp.Least: "least", exp.Cast: "cast", exp.TryCast: "try_cast",
    exp.DPipe: "||", exp.Case: "case", exp.If: "case", exp.Mod: "%",
}
_MAPPING_ALLOWED: tuple[type[exp.Expr], ...] = (*_ALLOWED, *MAPPING_FUNCTIONS, exp.DataType)
#: The types a mapping expression may cast to: plain scalar types, rebuilt by name when the SQL is written
#: (a quoted or user-defined type name is not a type: sqlglot would write its text back unchecked).
CAST_TYPES = {t: exp.DataType.build(t) for t in ("VARCHAR", "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT",
                                                  "DOUBLE", "FLOAT", "DATE", "TIMESTAMP", "TIMESTAMPTZ")}
_CAST_KINDS = {t.this: name for name, t in CAST_TYPES.items()}


def check_mapping_expression(text: str) -> exp.Expr:
    """Parse a mapping expression: like a filter, over the *source* columns of a log (any name, checked
    against the file when it is read), plus CASE, casts to :data:`CAST_TYPES` and :data:`MAPPING_FUNCTIONS`."""
    _check_size(text)
    tokens = sqlglot.tokenize(text, dialect="duckdb")
    for before, token in itertools.pairwise(tokens):
        if before.token_type == sqlglot.TokenType.ALIAS and token.token_type == sqlglot.TokenType.IDENTIFIER:
            # sqlglot re-reads a quoted type name and may keep part of it: a type is written bare
            raise ExpressionError(f"{text!r}: cast to a quoted name {token.text[:40]!r}; write the type bare "
                                  f"(one of {', '.join(CAST_TYPES)})")
    tree = _parse_one(text, sized=True)
    allowed = ", ".join(sorted(set(MAPPING_FUNCTIONS.values()) - {"||", "%", "case"}))
    for node in tree.walk():
        if isinstance(node, (exp.Subquery, exp.Select, exp.Query)):
            raise ExpressionError(f"{text!r}: sub-queries are not allowed")
        if isinstance(node, exp.Func) and not isinstance(node, _MAPPING_ALLOWED):
            name = node.sql_name() if hasattr(node, "sql_name") else type(node).__name__
            raise ExpressionError(f"{text!r}: function {name.lower()} is not allowed (allowed: {allowed})")
        if not isinstance(node, _MAPPING_ALLOWED):
            raise ExpressionError(f"{text!r}: {type(node).__name__.lower()} is not allowed (only source columns, "
                                  f"literals, comparisons, arithmetic, AND/OR/NOT, CASE and {allowed})")
        if isinstance(node, exp.Column) and node.table:
            raise ExpressionError(f"{text!r}: write columns without a table name ({node.sql()})")
        if isinstance(node, exp.DataType) and (node.this not in _CAST_KINDS or node.expressions):
            raise ExpressionError(f"{text!r}: cannot cast to {node.sql()[:40]!r} (types: "
                                  f"{', '.join(CAST_TYPES)})")
    return tree


def mapping_columns(tree: exp.Expr) -> list[str]:
    """The source columns a mapping expression reads, in order of appearance."""
    return list(dict.fromkeys(c.name for c in tree.find_all(exp.Column)))


def mapping_sql(tree: exp.Expr, dialect: str = "duckdb") -> str:
    """A checked mapping expression as SQL with every column quoted (source names may be any text)."""
    def quote(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column):
            return exp.column(exp.to_identifier(node.name, quoted=True))
        if isinstance(node, exp.DataType):  # only the checked kinds, rebuilt: no text of the file's survives
            return CAST_TYPES[_CAST_KINDS[node.this]].copy()
        return node

    return tree.copy().transform(quote).sql(dialect=dialect)


def check_constant(column, value: object, where: str) -> None:
    """A mapped constant must be a value of the contract column's type (``column``: a contract Column)."""
    t = _type_of_arrow(column.type_name)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: constant {value!r} is not a finite number")
    ok = {BOOLEAN: isinstance(value, bool),
          NUMBER: isinstance(value, (int, float)) and not isinstance(value, bool)
          and (column.type_name.startswith(("float", "double")) or float(value).is_integer()),
          STRING: isinstance(value, str),
          TIMESTAMP: isinstance(value, str) and _is_timestamp_text(exp.Literal.string(value))}[t]
    if not ok:
        raise ValueError(f"{where}: constant {value!r} is not a {column.type_name} value "
                         f"(column {column.name!r}: {column.doc})")
