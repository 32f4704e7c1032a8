"""Stored price bars for tests, built the way the importer stores them."""

from datetime import date, timedelta
from decimal import Decimal

from django.utils import timezone

from marketdata.models import Interval, PriceHistory
from marketdata.port import Source, close_of


def store_bars(
    ticker: str,
    closes: list[tuple[date, str]],
    *,
    source: str = Source.IMPORT,
    volume: int = 1000,
) -> list[PriceHistory]:
    """Store one daily bar per (session date, close) with open/high/low around the close."""
    now = timezone.now()
    rows = []
    for day, close in closes:
        c = Decimal(close)
        rows.append(
            PriceHistory(
                ticker=ticker,
                interval=Interval.DAILY,
                timestamp=close_of(day),
                open=c,
                high=c + Decimal("1"),
                low=max(c - Decimal("1"), Decimal("0.0001")),
                close=c,
                volume=volume,
                source=source,
                fetched_at=now,
            )
        )
    return PriceHistory.objects.bulk_create(rows)


def store_series(ticker: str, last_day: date, closes: list[str], **kwargs) -> list[PriceHistory]:
    """Store ``closes`` on consecutive weekdays ending at ``last_day`` (oldest first)."""
    days: list[date] = []
    day = last_day
    while len(days) < len(closes):
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    return store_bars(ticker, list(zip(reversed(days), closes, strict=True)), **kwargs)
