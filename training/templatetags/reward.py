"""Filters for the reward-model figures on the model and project pages."""

from __future__ import annotations

import math

from django import template

register = template.Library()


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@register.filter
def pct(value, digits: int = 1) -> str:
    """0.6234 → "62.3%"; nothing → "—"."""
    number = _number(value)
    return "—" if number is None else f"{100 * number:.{int(digits)}f}%"


@register.filter
def ci(value) -> str:
    """[0.58, 0.66] → "58.1–66.0%": a confidence interval in percent; nothing (too few pairs) → ""."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return ""
    lo, hi = (_number(v) for v in value)
    if lo is None or hi is None:
        return ""
    return f"{100 * lo:.1f}–{100 * hi:.1f}%"


@register.filter
def prob(value) -> str:
    """A probability with two decimals (0.913 → "0.91")."""
    number = _number(value)
    return "—" if number is None else f"{number:.2f}"
