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
