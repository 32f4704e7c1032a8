from decimal import Decimal

from django import template

from portfolios.money import format_money

register = template.Library()


@register.filter
def money(value) -> str:
    """$1,234.56, -$1,234.56; a price keeps its 4 places only when it needs them."""
    if value is None or value == "":
        return "—"
    return format_money(Decimal(value))


@register.filter
def price(value) -> str:
    if value is None or value == "":
        return "—"
    value = Decimal(value)
    text = f"{abs(value):,.4f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{abs(value):,.2f}"
    return f"{'-' if value < 0 else ''}${text}"


@register.filter
def shares(value) -> str:
    """A quantity without trailing zeros: 10, 0.5, 1,234.0001."""
    if value is None or value == "":
        return "0"
    value = Decimal(value)
    text = f"{value:,.4f}".rstrip("0").rstrip(".")
    return text


@register.filter
def pct(value) -> str:
    if value is None or value == "":
        return "—"
    return f"{Decimal(value):+,.2f}%"
