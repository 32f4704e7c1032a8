from decimal import Decimal

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from portfolios.money import format_money, format_price, format_shares

register = template.Library()


@register.filter
def money(value) -> str:
    """$1,234.56, -$1,234.56; a price keeps its 4 places only when it needs them."""
    if value is None or value == "":
        return "—"
    return format_money(Decimal(value))


@register.filter
def gain(value) -> str:
    """A gain with its sign, so that it reads without colour: +$12.25, -$55.00, $0.00."""
    if value is None or value == "":
        return "—"
    value = Decimal(value)
    return f"+{format_money(value)}" if value > 0 else format_money(value)


@register.filter
def count(value) -> str:
    """A whole number with thousands separators (a volume): 46,022,620."""
    if value is None or value == "":
        return "—"
    return f"{int(value):,}"


@register.filter
def price(value) -> str:
    if value is None or value == "":
        return "—"
    return format_price(Decimal(value))


@register.filter
def shares(value) -> str:
    """A quantity without trailing zeros: 10, 0.5, 1,234.0001."""
    if value is None or value == "":
        return "0"
    return format_shares(Decimal(value))


@register.filter
def plain(value) -> str:
    """A quantity as a form field takes it back: 10, 2.5 (no separators, no trailing zeros)."""
    if value is None or value == "":
        return ""
    return f"{Decimal(value).normalize():f}"


@register.filter
def pct(value) -> str:
    if value is None or value == "":
        return "—"
    return f"{Decimal(value):+,.2f}%"


@register.filter
def market_time(value, seconds: bool = False):
    """``<time datetime="…">2023-11-10 16:00 EST</time>`` in the market's time zone (the active
    one): what ``|date:"Y-m-d H:i T"`` in a ``<time>`` gives, at a tenth of its cost (tables
    show dozens). ``|market_time:True`` shows the seconds and not the date."""
    if not value:
        return ""
    local = value.astimezone(timezone.get_current_timezone())
    shown = f"{local:%H:%M:%S}" if seconds else f"{local:%Y-%m-%d %H:%M}"
    # Every part comes from the datetime and the zone database: nothing to escape.
    return mark_safe(f'<time datetime="{local.isoformat()}">{shown} {local.tzname()}</time>')  # noqa: S308


DEMO_CLOSE = "demo close"


@register.simple_tag(takes_context=True)
def price_cell(context, point) -> str:
    """A price with its as-of time, source and stale badge (``point``: a PricePoint). In the
    offline demo (``market_data_live`` False) the source reads "demo close": a stored real
    close, which the page's banner explains."""
    label = DEMO_CLOSE if context.get("market_data_live") is False else point.source_label
    stale = (
        format_html(
            '<span class="badge stale" title="{}">stale</span>',
            "A newer close should exist; this is the latest price stored.",
        )
        if point.is_stale
        else ""
    )
    fetching = (
        format_html(
            ' <span class="badge fetching" title="{}">fetching</span>',
            "A newer price is being fetched; the page picks it up when it arrives.",
        )
        if point.pending
        else ""
    )
    return format_html(
        '<span class="price">{}</span>\n<small class="as-of" title="Source: {}">as of {} · {}'
        "</small>\n{}{}",
        price(point.price),
        point.source_label,
        market_time(point.as_of),
        label,
        stale,
        fetching,
    )


@register.filter
def sign(value) -> str:
    """The class of a gain: "neg" below zero, "pos" above, "" for zero or unknown."""
    return "neg" if value is not None and value < 0 else "pos" if value else ""
