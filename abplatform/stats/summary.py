"""Analysis from aggregates alone: read a summary file of per-arm sums and score it.

Summary file format (``abplatform analyze-summary FILE``)
--------------------------------------------------------
A CSV file (header row, one row per metric × arm) or a JSON file (a list of row objects, or an
object ``{"rows": [...], "control": "A", "treatment": "B", "alpha": 0.05, "correction": "holm",
"relative_ci": "delta", "cuped": true}`` whose optional keys set the analysis options; a CSV file
takes them from the command's flags). The file is
read once and may be a pipe (``/dev/stdin``; without a ``.csv`` / ``.json`` suffix it is JSON when it
starts with ``[`` or ``{``), of at most 64 MiB.

Columns / keys of a row:

==============  =========  ==========================================================================
column          required   meaning
==============  =========  ==========================================================================
metric          yes        metric name
arm             yes        arm name; the first arm in the file is the control unless the JSON says so
type            yes        ``proportion`` (per-unit 0/1), ``mean`` (per-unit value) or ``ratio``
                           (Σx/Σy over units, e.g. item CTR = clicks/impressions per user)
n               yes        number of randomisation units (users) in the arm, a positive integer
sum_x           yes        Σx over units (for a proportion: the number of units with x = 1)
sum_x2          mean/ratio Σx² (optional for proportions, where x² = x)
sum_y, sum_y2,  ratio      Σy, Σy², Σxy of the per-unit denominator y
sum_xy
sum_xp, sum_xp2 CUPED      pre-period covariate xp (the same metric before the test; 0 for units with
sum_x_xp                   no pre-period activity): Σxp, Σxp², Σx·xp
sum_yp, sum_yp2 CUPED,     pre-period denominator yp: Σyp, Σyp², Σxp·yp, Σx·yp, Σy·xp, Σy·yp
sum_xp_yp,      ratio
sum_x_yp,
sum_y_xp,
sum_y_yp
sum_x2y,        no         ratio: Σx²y, Σxy², Σy³ turn on the small-sample correction (jackknife
sum_xy2,                   leverage factor + Kish df; see ``abplatform.stats.moments``)
sum_y3
direction       no         ``increase`` (default) or ``decrease``: which way is better
role            no         ``primary`` (default), ``secondary`` or ``guardrail``
margin          no         guardrail non-inferiority margin, relative (0.01 = 1%)
alternative     no         ``two-sided`` (default), ``greater`` (H1: treatment > control) or ``less``
                           (primary and secondary metrics; guardrails take theirs from guardrail_test)
equal_var       no         ``true``: Student's pooled-variance t instead of Welch's (not for ratios)
test            no         proportions only: ``welch`` (default, the run's test), ``wald``,
                           ``pooled``, ``continuity`` or ``fisher`` (``abplatform.stats.proportion_tests``)
==============  =========  ==========================================================================

Options (JSON top-level keys; flags of ``abplatform analyze-summary``, which win over the file):

==================  ===========================================================================
option              meaning (default)
==================  ===========================================================================
control, treatment  arm names (the first arm in the file; every other arm)
alpha               significance level in (0, 0.5) (0.05)
correction          none, holm or bh (none); ``correction_scope`` primary or all (primary)
relative_ci         delta, log or fieller (fieller, as runs)
cuped               true / false (true when the file has covariate sums)
guardrail_test      harm or noninferiority (harm, as runs)
sequential          ``{"method": "confidence_sequence" | "obrien_fleming", "tuning_n": 5000,
                    "planned_units": N, "earlier_units": [n1, n2, ...]}``: the summary is the
                    current look, after looks with ``earlier_units`` units (both arms)
weights             planned split per arm for the sample-ratio check, e.g. ``{"A": 1, "B": 1}``
                    (equal)
srm_threshold       p below which the sample-ratio check fails (0.001)
==================  ===========================================================================

Every arm must have a row for every metric. Bad input raises :class:`abplatform.errors.InputError`
listing every problem as ``FILE:LINE: field 'n': expected a positive integer, got -3`` (LINE is
the CSV line, or the line where the JSON row object starts), e.g. n = 0, a missing column, an
unknown type, or sums that imply a negative variance (Σx² < (Σx)²/n).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..files import read_input
from .compare import compare
from .moments import COVARIATE_COLUMNS, RATIO_COLUMNS, SMALL_SAMPLE_COLUMNS
from .srm import DEFAULT_SRM_THRESHOLD, srm_test
from .types import (
    ALTERNATIVES,
    DIRECTIONS,
    METRIC_TYPES,
    PROPORTION_TESTS,
    ROLES,
    Correction,
    CorrectionScope,
    MetricSpec,
    RelativeCI,
    SequentialSpec,
    SrmResult,
)

_NUMERIC = ("sum_x", "sum_x2", *RATIO_COLUMNS, *COVARIATE_COLUMNS, *SMALL_SAMPLE_COLUMNS)
_LABELS = ("direction", "role", "margin", "alternative", "equal_var", "test")
_OPTION_KEYS = ("control", "treatment", "alpha", "correction", "correction_scope", "relative_ci", "cuped",
                "guardrail_test", "sequential", "weights", "srm_threshold")
_COVARIATES = {
    "proportion": COVARIATE_COLUMNS[:3],
    "mean": COVARIATE_COLUMNS[:3],
    "ratio": COVARIATE_COLUMNS,
}


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and v.strip() == "")


def _read_rows(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, Any]]:
    data = read_input(path, "summary file")  # once: a pipe or /dev/stdin works; at most 64 MiB
    rows, options = _parse_text(path, data)
    options["_sha256"] = hashlib.sha256(data).hexdigest()
    return rows, options


def _parse_text(path: Path, data: bytes) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, Any]]:
    try:
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (byte 0x{err.object[err.start]:02x}); "
                         "expected a UTF-8 summary file") from None
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix != ".csv" and text.lstrip().startswith(("[", "{"))):  # a pipe has no suffix
        return _read_json(path, text)
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}:1: not a readable CSV file: {err}") from err
    frame.columns = [c.strip() for c in frame.columns]
    _check_header(path, list(frame.columns))
    rows = [(i + 2, {str(k): v for k, v in rec.items()}) for i, rec in enumerate(frame.to_dict("records"))
            if any(str(v).strip() for v in rec.values())]
    return rows, {}


_BASE = ("metric", "arm", "type", "n", "sum_x")


def _check_header(path: Path, columns: list[str]) -> None:
    """One line for a header that cannot work: one column (wrong delimiter) or a missing base column."""
    from difflib import get_close_matches

    if len(columns) == 1 and any(d in columns[0] for d in ";\t|"):
        raise InputError(f"{path}:1: read as a single column {columns[0][:40]!r}; expected comma-separated "
                         f"columns {', '.join(_BASE)}, ... (wrong delimiter?)")
    missing = [c for c in _BASE if c not in columns]
    if missing:
        known = [*_BASE, *_NUMERIC, *_LABELS]
        unknown = [c for c in columns if c not in known]
        hint = get_close_matches(missing[0], unknown, n=1)
        raise InputError(f"{path}:1: missing column {missing[0]!r}" + (f" (found {hint[0]!r})" if hint else "")
                         + f"; every row needs {', '.join(_BASE)}")


def _read_json(path: Path, text: str) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, Any]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from err
    options: dict[str, Any] = {}
    start = 0
    if isinstance(doc, dict):
        if not isinstance(doc.get("rows"), list):
            raise InputError(f"{path}:1: field 'rows': expected a list of row objects")
        options = {k: doc[k] for k in _OPTION_KEYS if k in doc}
        lines = {}
        for k in options:
            m = re.search(r'"' + re.escape(k) + r'"\s*:', text)
            lines[k] = text.count("\n", 0, m.start()) + 1 if m else 1
        options["_lines"] = lines
        unknown = sorted(set(doc) - {"rows", *_OPTION_KEYS})
        if unknown:
            raise InputError(f"{path}:1: unknown top-level keys {unknown}; allowed: rows, {', '.join(_OPTION_KEYS)}")
        m = re.search(r'"rows"\s*:\s*\[', text)
        start = m.end() if m else 0
    elif isinstance(doc, list):
        start = text.index("[") + 1
    else:
        raise InputError(f"{path}:1: expected a list of rows or an object with 'rows'")
    decoder = json.JSONDecoder()
    rows: list[tuple[int, dict[str, Any]]] = []
    pos = start
    for item in doc["rows"] if isinstance(doc, dict) else doc:
        while text[pos] in " \t\r\n,":
            pos += 1
        line = text.count("\n", 0, pos) + 1
        _, pos = decoder.raw_decode(text, pos)
        if not isinstance(item, dict):
            raise InputError(f"{path}:{line}: expected a row object, got {type(item).__name__}")
        rows.append((line, item))
    return rows, options


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


Bad = Callable[[str, str], None]  # bad(field, message) records a problem of the row


def _parse_row(where: str, raw: dict[str, Any], problems: list[str]) -> dict[str, Any] | None:
    """A row's fields (metric, arm, type, n, the sums, direction, role, margin, in this order), or None
    when it has a problem; each problem is appended to ``problems``."""
    def bad(field: str, msg: str) -> None:
        problems.append(f"{where}: field '{field}': {msg}")

    row: dict[str, Any] = {}
    ok = _parse_names(raw, row, bad)
    mtype = _parse_type_and_n(raw, row, bad)
    if mtype is None:
        return None
    cov = _COVARIATES[mtype]
    present_cov = [c for c in cov if not _missing(raw.get(c))]
    if present_cov and len(present_cov) != len(cov):
        bad(next(c for c in cov if c not in present_cov), f"CUPED needs all of {', '.join(cov)} for a {mtype} metric")
        ok = False
    ok = _parse_sums(raw, row, mtype, bad) and ok
    if not ok:
        return None
    if mtype == "proportion" and not _proportion_ok(row, bad):
        return None
    ok = _moments_ok(row, mtype, bool(present_cov), bad)
    ok = _parse_labels(raw, row, bad) and ok
    return row if ok else None


def _parse_names(raw: dict[str, Any], row: dict[str, Any], bad: Bad) -> bool:
    ok = True
    for key in ("metric", "arm"):
        v = raw.get(key)
        if _missing(v):
            bad(key, "required, expected a non-empty name")
            ok = False
        else:
            row[key] = str(v).strip()
    return ok


def _parse_type_and_n(raw: dict[str, Any], row: dict[str, Any], bad: Bad) -> str | None:
    """The metric type and n (what every other field's check depends on); None when either is bad."""
    mtype = raw.get("type")
    mtype = None if _missing(mtype) else str(mtype).strip()
    if mtype not in METRIC_TYPES:
        bad("type", f"expected one of {', '.join(METRIC_TYPES)}, got {mtype!r}")
        return None
    row["type"] = mtype
    n = _number(raw.get("n"))
    if n is None or n <= 0 or n != int(n):
        got = "nothing" if _missing(raw.get("n")) else str(raw.get("n")).strip()
        bad("n", "expected a positive integer, got " + got)
        return None
    row["n"] = int(n)
    if mtype != "proportion" and n < 2:
        bad("n", f"expected at least 2 units for a {mtype} metric (a variance needs two), got {int(n)}")
        return None
    return mtype


def _parse_sums(raw: dict[str, Any], row: dict[str, Any], mtype: str, bad: Bad) -> bool:
    """Every sum column as a float (NaN when absent); the type's required sums must be there."""
    need = ["sum_x"] + (["sum_x2"] if mtype != "proportion" else []) + (list(RATIO_COLUMNS) if mtype == "ratio" else [])
    ok = True
    for col in _NUMERIC:
        v = raw.get(col)
        if _missing(v):
            if col in need:
                bad(col, f"required for a {mtype} metric")
                ok = False
            row[col] = math.nan
            continue
        x = _number(v)
        if x is None:
            bad(col, f"expected a number, got {v!r}")
            ok = False
            x = math.nan
        row[col] = x
    return ok


def _proportion_ok(row: dict[str, Any], bad: Bad) -> bool:
    nn = row["n"]
    if not 0 <= row["sum_x"] <= nn:
        bad("sum_x", f"expected a count between 0 and n = {nn} for a proportion, got {row['sum_x']}")
        return False
    if math.isnan(row["sum_x2"]):
        row["sum_x2"] = row["sum_x"]
    return True


def _moments_ok(row: dict[str, Any], mtype: str, has_cov: bool, bad: Bad) -> bool:
    """Sums that a real sample can have: no negative variance, a correlation within ±1, a denominator."""
    nn = row["n"]

    def variance_ok(s: str, s2: str) -> bool:
        need_v = row[s] ** 2 / nn
        if row[s2] < need_v - 1e-9 * max(1.0, abs(need_v)):
            bad(s2, f"negative variance: {s2} = {row[s2]:g} < {s}^2/n = {need_v:g}")
            return False
        return True

    pairs = [("sum_x", "sum_x2")] + ([("sum_y", "sum_y2")] if mtype == "ratio" else [])
    pairs += [("sum_xp", "sum_xp2")] if has_cov else []
    pairs += [("sum_yp", "sum_yp2")] if has_cov and mtype == "ratio" else []
    checked = [variance_ok(a, b) for a, b in pairs]  # a list, not a generator: every pair is reported
    ok = all(checked)
    if ok and mtype == "ratio":
        sxx = row["sum_x2"] - row["sum_x"] ** 2 / nn
        syy = row["sum_y2"] - row["sum_y"] ** 2 / nn
        sxy = row["sum_xy"] - row["sum_x"] * row["sum_y"] / nn
        if sxy**2 > sxx * syy * (1 + 1e-9) + 1e-12:
            bad("sum_xy", "inconsistent with sum_x2 and sum_y2 (implies a correlation beyond ±1)")
            ok = False
        if row["sum_y"] == 0:
            bad("sum_y", "the ratio's denominator sums to 0")
            ok = False
    return ok


def _parse_choices(raw: dict[str, Any], row: dict[str, Any], bad: Bad,
                   fields: tuple[tuple[str, tuple[str, ...], str], ...]) -> bool:
    """Each (key, allowed values, default) of ``fields`` into ``row``; False when one is not allowed."""
    ok = True
    for key, allowed, default in fields:
        v = raw.get(key)
        v = default if _missing(v) else str(v).strip()
        if v not in allowed:
            bad(key, f"expected one of {', '.join(allowed)}, got {v!r}")
            ok = False
        row[key] = v
    return ok


def _parse_labels(raw: dict[str, Any], row: dict[str, Any], bad: Bad) -> bool:
    """direction and role (with their defaults) and the optional guardrail margin."""
    ok = _parse_choices(raw, row, bad, (("direction", DIRECTIONS, "increase"), ("role", ROLES, "primary")))
    margin = raw.get("margin")
    if _missing(margin):
        row["margin"] = None
    else:
        m = _number(margin)
        if m is None or not 0 < m < 1:
            bad("margin", f"expected a relative margin in (0, 1), got {margin!r}")
            ok = False
        row["margin"] = m
    return _parse_test_labels(raw, row, bad) and ok


_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _parse_test_labels(raw: dict[str, Any], row: dict[str, Any], bad: Bad) -> bool:
    """alternative, equal_var and test, and the combinations that have no meaning."""
    ok = _parse_choices(raw, row, bad,
                        (("alternative", ALTERNATIVES, "two-sided"), ("test", PROPORTION_TESTS, "welch")))
    ev = raw.get("equal_var")
    if _missing(ev):
        row["equal_var"] = False
    elif isinstance(ev, bool) or str(ev).strip().lower() in (*_TRUE, *_FALSE):
        row["equal_var"] = ev if isinstance(ev, bool) else str(ev).strip().lower() in _TRUE
    else:
        bad("equal_var", f"expected true or false, got {ev!r}")
        ok = False
        row["equal_var"] = False
    mtype = row["type"]
    if row["equal_var"] and mtype == "ratio":
        bad("equal_var", "expected false for a ratio metric (its variance is a delta-method linearisation with "
                         "no pooled form)")
        ok = False
    if row["test"] != "welch" and mtype != "proportion":
        bad("test", f"test {row['test']!r} is a test of proportions; a {mtype} metric takes welch")
        ok = False
    elif row["test"] != "welch" and row["equal_var"]:
        bad("equal_var", f"expected false with test {row['test']!r} (equal_var is Student's t, for welch rows)")
        ok = False
    elif row["test"] in ("continuity", "fisher") and row["margin"] is not None:
        bad("test", f"test {row['test']!r} tests no change (absolute difference / odds ratio 1); a relative "
                    "guardrail margin needs welch, wald or pooled")
        ok = False
    return ok


def read_summary(path: str | Path) -> tuple[pd.DataFrame, dict[str, MetricSpec], dict[str, Any]]:
    """Parse and validate a summary file → (suff, metric specs, options).

    ``options`` has ``control`` (str), ``treatments`` and ``arms`` (lists of str), ``_sha256`` (of the
    bytes read) plus the options set in a JSON file (``_OPTION_KEYS``; ``_lines``: the line of each).
    """
    path = Path(path)
    raw_rows, options = _read_rows(path)
    problems: list[str] = []
    if not raw_rows:
        raise InputError(f"{path}:1: no rows")
    parsed: list[tuple[int, dict[str, Any]]] = []
    for line, raw in raw_rows:
        row = _parse_row(f"{path}:{line}", raw, problems)
        if row is not None:
            parsed.append((line, row))
    specs: dict[str, MetricSpec] = {}
    spec_line: dict[str, int] = {}
    seen: dict[tuple[str, str], int] = {}
    for line, row in parsed:
        key = (row["metric"], row["arm"])
        if key in seen:
            problems.append(f"{path}:{line}: field 'arm': duplicate row for metric {key[0]!r} arm {key[1]!r} "
                            f"(first at line {seen[key]})")
            continue
        seen[key] = line
        spec = MetricSpec(row["type"], row["direction"], row["role"], row["margin"], row["alternative"],
                          row["equal_var"], row["test"])
        if row["metric"] in specs and specs[row["metric"]] != spec:
            problems.append(f"{path}:{line}: field 'type': metric {row['metric']!r} is described differently at "
                            f"line {spec_line[row['metric']]} (type/direction/role/margin/alternative/equal_var/"
                            "test must agree)")
        specs.setdefault(row["metric"], spec)
        spec_line.setdefault(row["metric"], line)
    arms = list(dict.fromkeys(str(r["arm"]).strip() for _, r in raw_rows if not _missing(r.get("arm"))))
    # a row that is present but invalid has its own problem above; "no row" only when there is none
    present = {(str(r.get("metric")).strip(), str(r.get("arm")).strip()) for _, r in raw_rows}
    for metric, line in spec_line.items():
        for arm in arms:
            if (metric, arm) not in seen and (metric, arm) not in present:
                problems.append(f"{path}:{line}: field 'arm': metric {metric!r} has no row for arm {arm!r}")
    if problems:
        raise InputError("\n".join(problems), problems)
    if len(arms) < 2:
        raise InputError(f"{path}:1: field 'arm': need at least two arms, got {arms}")
    control = str(options.pop("control", arms[0]))
    if control not in arms:
        raise InputError(f"{path}:1: field 'control': arm {control!r} not in the file (arms: {arms})")
    treatment = options.pop("treatment", None)
    treatments = [str(treatment)] if treatment is not None else [a for a in arms if a != control]
    if any(t not in arms or t == control for t in treatments):
        raise InputError(f"{path}:1: field 'treatment': expected an arm other than the control among {arms}, "
                         f"got {treatment!r}")
    suff = pd.DataFrame([r for _, r in parsed]).drop(columns=["type", *_LABELS])
    return suff, specs, {"control": control, "treatments": treatments, "arms": arms,
                         "_row_lines": dict(seen), **options}


@dataclass(frozen=True)
class SummaryOptions:
    """The analysis options of a summary file, after the file's keys and the caller's overrides."""

    alpha: float = 0.05
    correction: Correction = "none"
    correction_scope: CorrectionScope = "primary"
    relative_ci: RelativeCI = "fieller"
    cuped: bool = False
    guardrail_test: str = "harm"
    sequential: SequentialSpec | None = None
    weights: dict[str, float] = field(default_factory=dict)
    srm_threshold: float = DEFAULT_SRM_THRESHOLD


_CHOICES = {"correction": ("none", "holm", "bh"), "correction_scope": ("primary", "all"),
            "relative_ci": ("delta", "log", "fieller"), "guardrail_test": ("harm", "noninferiority")}


def _positive(v: Any) -> float | None:
    x = _number(v)
    return x if x is not None and x > 0 else None


def _sequential(v: Any, bad: Callable[[str], None]) -> SequentialSpec | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        bad(f"expected an object {{\"method\": ..., \"planned_units\": ...}}, got {v!r}")
        return None
    unknown = sorted(set(v) - {"method", "tuning_n", "planned_units", "earlier_units"})
    if unknown:
        bad(f"unknown keys {unknown}; allowed: method, tuning_n, planned_units, earlier_units")
    method = v.get("method")
    if method not in ("confidence_sequence", "obrien_fleming"):
        bad(f"'method': expected confidence_sequence or obrien_fleming, got {method!r}")
        return None
    tuning = _positive(v.get("tuning_n", 5000))
    planned = None if v.get("planned_units") is None else _positive(v.get("planned_units"))
    earlier = v.get("earlier_units", [])
    looks = [_positive(e) for e in earlier] if isinstance(earlier, list) else [None]
    if tuning is None:
        bad(f"'tuning_n': expected a positive number, got {v.get('tuning_n')!r}")
    elif method == "obrien_fleming" and planned is None:
        bad(f"'planned_units': expected a positive number (units in both arms) for obrien_fleming, "
            f"got {v.get('planned_units')!r}")
    elif any(e is None for e in looks) or any(b < a for a, b in itertools.pairwise(looks)):  # type: ignore[operator]
        bad(f"'earlier_units': expected a list of increasing positive unit counts, got {earlier!r}")
    else:
        return SequentialSpec(method=method, tuning_n=tuning, planned_n=planned,
                              earlier_n=tuple(float(e) for e in looks))  # type: ignore[arg-type]
    return None


def _option_value(key: str, v: Any, arms: list[str], bad: Callable[[str], None]) -> Any:
    """The checked value of option ``key``, or None after ``bad(...)``."""
    if key in _CHOICES:
        if v not in _CHOICES[key]:
            bad(f"expected one of {', '.join(_CHOICES[key])}, got {v!r}")
        else:
            return v
    elif key in ("alpha", "srm_threshold"):
        x = _number(v)
        hi = 0.5 if key == "alpha" else 1.0
        if x is None or not 0 < x < hi:
            bad(f"expected a number in (0, {hi:g}), got {v!r}")
        else:
            return x
    elif key == "cuped":
        if not isinstance(v, bool):
            bad(f"expected true or false, got {v!r}")
        else:
            return v
    elif key == "sequential":
        return _sequential(v, bad)
    else:  # weights
        if not isinstance(v, dict) or not v:
            bad(f"expected an object of positive weights per arm, e.g. {{{', '.join(f'{a!r}: 1' for a in arms)}}}"
                .replace("'", '"') + f", got {v!r}")
            return None
        wrong = [a for a in v if a not in arms]
        missing = [a for a in arms if a not in v]
        numbers = {a: _positive(w) for a, w in v.items()}
        if wrong or missing:
            bad(f"expected a weight for each arm {arms}" + (f"; unknown arms {wrong}" if wrong else "")
                + (f"; missing {missing}" if missing else ""))
        elif any(w is None for w in numbers.values()):
            bad(f"expected positive numbers, got {v!r}")
        else:
            return numbers
    return None


def resolve_options(path: str | Path, file_options: dict[str, Any], has_cov: bool,
                    overrides: dict[str, Any] | None = None) -> SummaryOptions:
    """The options of a summary analysis: ``overrides`` (the command's flags; None = not given) over the
    file's keys over the defaults. A bad value is an :class:`InputError` naming the file and line of
    the key (or the flag) and what is expected."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    lines = file_options.get("_lines", {})
    arms = file_options.get("arms", [])
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key in ("alpha", "correction", "correction_scope", "relative_ci", "cuped", "guardrail_test", "sequential",
                "weights", "srm_threshold"):
        if key in overrides:
            v, where = overrides[key], f"--{key.replace('_', '-')}"
        elif key in file_options:
            v, where = file_options[key], f"{path}:{lines.get(key, 1)}: field '{key}'"
        else:
            continue

        def bad(msg: str, where: str = where) -> None:
            problems.append(f"{where}: {msg}")

        value = _option_value(key, v, arms, bad)
        if value is not None:
            values[key] = value
    if problems:
        raise InputError("\n".join(problems), problems)
    values.setdefault("cuped", has_cov)
    values.setdefault("weights", dict.fromkeys(arms, 1.0))
    return SummaryOptions(**values)


def unit_counts(path: str | Path, suff: pd.DataFrame, options: dict[str, Any]) -> dict[str, int]:
    """Units per arm: every metric must count the same units (an InputError names the row that disagrees)."""
    lines = options.get("_row_lines", {})
    units: dict[str, tuple[int, str]] = {}
    problems = []
    for metric, arm, n in suff[["metric", "arm", "n"]].itertuples(index=False, name=None):
        if arm not in units:
            units[arm] = (int(n), metric)
        elif units[arm][0] != int(n):
            first_n, first = units[arm]
            problems.append(f"{path}:{lines.get((metric, arm), 1)}: field 'n': metric {metric!r} has n = {int(n)} "
                            f"in arm {arm!r}, but metric {first!r} has {first_n}; every metric must count the same "
                            "units (the sample-ratio check needs one n per arm)")
    if problems:
        raise InputError("\n".join(problems), problems)
    return {a: units[a][0] for a in options.get("arms", units)}


@dataclass(frozen=True)
class SummaryAnalysis:
    """A summary file, scored: the scorecard per treatment, the SRM check and what was read."""

    path: Path
    sha256: str
    rows: int
    control: str
    cards: dict[str, pd.DataFrame]  # treatment arm → compare's scorecard (+ MDE columns)
    options: SummaryOptions
    srm: SrmResult | None  # None when not asked for


def analyze_summary_file(path: str | Path, *, check_srm: bool = True, **overrides: Any) -> SummaryAnalysis:
    """Read, validate and score a summary file: ``compare`` of every treatment arm against the control
    with the resolved options, and (``check_srm``) the sample-ratio check over all its arms
    (``srm_test``), which needs every metric to count the same units per arm."""
    from .power import mde_columns

    path = Path(path)
    suff, specs, file_options = read_summary(path)
    has_cov = "sum_xp" in suff and bool(suff["sum_xp"].notna().any())
    opts = resolve_options(path, file_options, has_cov, overrides)
    units = unit_counts(path, suff, file_options) if check_srm else None
    try:
        srm = srm_test(units, opts.weights, opts.srm_threshold) if units is not None else None
        cards = {}
        for t in file_options["treatments"]:
            card = compare(suff, specs, file_options["control"], t, alpha=opts.alpha, relative_ci=opts.relative_ci,
                           correction=opts.correction, correction_scope=opts.correction_scope, cuped=opts.cuped,
                           guardrail_test=opts.guardrail_test, sequential=opts.sequential)
            cards[t] = pd.concat([card, mde_columns(card, opts.alpha)], axis=1)
    except ValueError as err:
        raise InputError(f"{path}: {err}") from err
    return SummaryAnalysis(path=path, sha256=file_options["_sha256"], rows=len(suff), control=file_options["control"],
                           cards=cards, options=opts, srm=srm)


def summary_scorecard(path: str | Path, **overrides: Any) -> pd.DataFrame:
    """Scorecard of a summary file: ``compare`` of every treatment arm against the control.

    Keyword arguments (``alpha``, ``relative_ci``, ``correction``, ``correction_scope``, ``cuped``,
    ``guardrail_test``, ``sequential`` as the file's object, ``weights``, ``srm_threshold``) override
    the file's options; defaults are alpha 0.05, Fieller relative CI, no correction, harm guardrail
    test, CUPED on when the file has covariate sums. Adds ``control_arm`` and ``treatment_arm``
    columns in front.
    """
    analysis = analyze_summary_file(path, check_srm=False, **overrides)
    card = pd.concat([c.assign(control_arm=analysis.control, treatment_arm=t) for t, c in analysis.cards.items()],
                     ignore_index=True)
    front = ["control_arm", "treatment_arm"]
    return card[front + [c for c in card.columns if c not in front]]
