from django import template
from django.utils.safestring import mark_safe

from feedback.rendering import markdown_to_safe_html

register = template.Library()


@register.filter
def markdown(text: str) -> str:
    """Sanitised HTML from untrusted markdown (see feedback/rendering.py)."""
    return mark_safe(markdown_to_safe_html(text))  # noqa: S308 (sanitised by nh3 just above)


@register.filter
def duration(seconds: float | None) -> str:
    """ "42 s", "3 min 5 s", "2 h 10 min": how long a job took, to the precision a person reads."""
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"
