"""A person's own watchlist (PRODUCT §11.3): what the watchlist page shows, read from the
cache and the stored bars only (never a call upstream): each ticker's latest price with its
day change, and a three-month line drawn as a small SVG."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
from django.utils.html import format_html

from marketdata.port import MarketDataError, PricePoint, get_price_port, session_date
from portfolios.models import WatchedTicker

LINE_DAYS = 92
WIDTH, HEIGHT = 120, 32


@dataclass
class WatchRow:
    ticker: str
    company: str
    price: PricePoint | None
    error: str
    change: Decimal | None
    change_pct: Decimal | None
    line: str  # an inline SVG, or ""


def watch_rows(user) -> list[WatchRow]:
    """One query for the list, one price read (a cache round trip, a query for what is not
    cached), one query for every ticker's three months of closes."""
    tickers = list(
        WatchedTicker.objects.filter(owner=user).order_by("ticker").values_list("ticker", flat=True)
    )
    if not tickers:
        return []
    port = get_price_port()
    prices = port.get_current_prices(tickers)
    # Each line ends at its ticker's latest price (stored history may end before today: the
    # demo's does), so one read spans from the earliest such start to the latest end.
    today = session_date(timezone.now())
    last = {t: p.session_date for t, p in prices.items() if isinstance(p, PricePoint)}
    ends = {t: min(last.get(t, today), today) for t in tickers}
    closes = port.get_closes(
        tickers, min(ends.values()) - timedelta(days=LINE_DAYS), max(ends.values())
    )
    names = port.company_names(tickers)
    rows = []
    for ticker in tickers:
        point = prices.get(ticker)
        price = point if isinstance(point, PricePoint) else None
        change = change_pct = None
        if price is not None and price.previous_close:
            change = price.price - price.previous_close
            change_pct = (change / price.previous_close * 100).quantize(Decimal("0.01"))
        rows.append(
            WatchRow(
                ticker=ticker,
                company=names.get(ticker, ""),
                price=price,
                error=str(point) if isinstance(point, MarketDataError) else "",
                change=change,
                change_pct=change_pct,
                line=sparkline(
                    ticker,
                    [
                        c
                        for day, c in closes.get(ticker, [])
                        if ends[ticker] - timedelta(days=LINE_DAYS) <= day <= ends[ticker]
                    ],
                ),
            )
        )
    return rows


def sparkline(ticker: str, closes: list[Decimal]) -> str:
    """The closes as a small line (an SVG polyline), with what it shows in its label."""
    if len(closes) < 2:
        return ""
    low, high = min(closes), max(closes)
    span = (high - low) or Decimal(1)
    step = Decimal(WIDTH) / (len(closes) - 1)
    points = " ".join(
        f"{float(i * step):.1f},{float(HEIGHT - 2 - (c - low) / span * (HEIGHT - 4)):.1f}"
        for i, c in enumerate(closes)
    )
    label = f"{ticker} over three months: from ${closes[0]:,.2f} to ${closes[-1]:,.2f}"
    return format_html(
        '<svg class="sparkline" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="{}"><polyline fill="none" stroke="currentColor" stroke-width="1.5" '
        'points="{}"/></svg>',
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        label,
        points,
    )
