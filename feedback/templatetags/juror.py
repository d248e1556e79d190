from django import template
from django.utils.safestring import mark_safe

from feedback.rendering import markdown_to_safe_html

register = template.Library()


@register.filter
def markdown(text: str) -> str:
    """Sanitised HTML from untrusted markdown (see feedback/rendering.py)."""
    return mark_safe(markdown_to_safe_html(text))  # noqa: S308 (sanitised by nh3 just above)
