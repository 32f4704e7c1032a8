"""Writing daily bars into ``PriceHistory``: one upsert shared by the importer and the refresh."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from marketdata.models import Interval, PriceHistory
from marketdata.port import Source
from marketdata.trading_calendar import close_of

UPDATE_FIELDS = ["open", "high", "low", "close", "volume", "source", "fetched_at"]


class BarLike(Protocol):
    day: date
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int


def upsert_daily_bars(
    *, ticker: str, bars: Iterable[BarLike], source: str, fetched_at: datetime
) -> tuple[int, int]:
    """Insert new bars and update changed ones; returns (inserted, updated).

    One query reads what is stored over the bars' date range; one ``INSERT … ON CONFLICT DO
    UPDATE`` writes. Bars that are stored unchanged are not written. Automatic sources never
    overwrite a bar imported by hand (``source=import``); an import overwrites anything.
    """
    stamps = {close_of(bar.day): bar for bar in bars}
    if not stamps:
        return 0, 0
    stored = {
        timestamp: rest
        for timestamp, *rest in PriceHistory.objects.daily(ticker)
        .filter(timestamp__gte=min(stamps), timestamp__lte=max(stamps))
        .values_list("timestamp", "open", "high", "low", "close", "volume", "source")
    }
    inserted = updated = 0
    writes = []
    for timestamp, bar in stamps.items():
        known = stored.get(timestamp)
        if known is None:
            inserted += 1
        elif known[:5] == [bar.open, bar.high, bar.low, bar.close, bar.volume]:
            continue
        elif known[5] == Source.IMPORT and source != Source.IMPORT:
            continue  # rows imported by hand are never overwritten by automatic refresh
        else:
            updated += 1
        writes.append(
            PriceHistory(
                ticker=ticker,
                interval=Interval.DAILY,
                timestamp=timestamp,
                open=bar.open,
                high=bar.high,
                low=bar.low,
                close=bar.close,
                volume=bar.volume,
                source=source,
                fetched_at=fetched_at,
            )
        )
    if writes:
        PriceHistory.objects.bulk_create(
            writes,
            update_conflicts=True,
            unique_fields=["ticker", "interval", "timestamp"],
            update_fields=UPDATE_FIELDS,
        )
    return inserted, updated
