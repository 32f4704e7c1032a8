"""Charts drawn where a template shows them, from what the template already has."""

from django import template
from django.utils.safestring import mark_safe

from portfolios import charts

register = template.Library()


@register.filter
def allocation_chart(summary) -> str:
    """``{{ summary|allocation_chart }}``: the portfolio's allocation donut (Plotly HTML), or
    nothing when it holds no stock. Built from the summary's figures: no price read, no query."""
    return mark_safe(charts.allocation_chart(summary))  # noqa: S308 - Plotly escapes its JSON
