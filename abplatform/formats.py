"""Number formats people read: signed percentages, CIs in brackets, small p-values bounded.

Pure Python, so the dashboard can format numbers without importing the statistics stack.
"""

from __future__ import annotations

import math


def _missing(v: float | None) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def fmt_value(v: float | None) -> str:
    return "n/a" if _missing(v) else f"{v:.4g}"


def fmt_pct(v: float | None) -> str:
    return "n/a" if _missing(v) else f"{v:+.2%}"


def fmt_ci(lo: float | None, hi: float | None, pct: bool = True, alternative: str = "two-sided") -> str:
    """[lo, hi]; a one-sided interval as [lo, +∞) (alternative "greater") or (−∞, hi] ("less")."""
    f = fmt_pct if pct else fmt_value
    if alternative == "greater":
        return f"[{f(lo)}, +∞)"
    if alternative == "less":
        return f"(−∞, {f(hi)}]"
    return f"[{f(lo)}, {f(hi)}]"


def fmt_p(p: float | None) -> str:
    if p is None or _missing(p):
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def fmt_rate(v: float | None, digits: int = 2) -> str:
    """A proportion as an unsigned percentage: 0.1265 -> "12.65%"."""
    return "n/a" if v is None or _missing(v) else f"{v:.{digits}%}"


def fmt_pp(v: float | None) -> str:
    """A difference of two proportions in percentage points: 0.0221 -> "+2.21 pp"."""
    return "n/a" if v is None or _missing(v) else f"{v * 100:+.2f} pp"


def fmt_duration_ms(v: float | None) -> str:
    """A duration given in milliseconds, in the unit that reads best: 0.0071 -> "7.1 µs",
    0.00096 -> "0.96 µs", 12.5 -> "12.5 ms", 2300 -> "2.3 s" (three significant digits)."""
    if _missing(v):
        return "n/a"
    assert v is not None
    if abs(v) < 1:
        return f"{v * 1000:.3g} µs"
    if abs(v) < 1000:
        return f"{v:.3g} ms"
    return f"{v / 1000:.3g} s"
