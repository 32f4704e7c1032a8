"""The price port's implementation: Django cache (hot) → ``PriceHistory`` (warm).

A database hit warms the cache. Cached entries hold the bar as stored; staleness is derived on
every read against the NYSE calendar, never stored. Cache errors degrade to misses (the Redis
cache is configured with ``IGNORE_EXCEPTIONS``), so the database tier still answers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from functools import cache as memoize

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from marketdata.models import Interval, PriceHistory
from marketdata.port import (
    MarketDataError,
    MarketDataUnavailable,
    PricePoint,
    SymbolMatch,
    TickerNotFound,
)
from marketdata.trading_calendar import close_of, latest_due_close, session_date

# Cache keys: one family, versioned by the prefix; bump the version when the value shape changes.
CURRENT_KEY = "md:v1:current:{ticker}"  # a PricePoint, or NOT_FOUND (the negative cache)
DEMO_AS_OF_KEY = "md:v1:demo-as-of"
UPSTREAM_STATUS_KEY = "md:v1:upstream-status"
NOT_FOUND = "not-found"


def current_key(ticker: str) -> str:
    return CURRENT_KEY.format(ticker=ticker)


def is_live() -> bool:
    """True when a provider key is configured; otherwise the app runs on stored prices only."""
    return bool(settings.ALPHA_VANTAGE_API_KEY)


def _point_from_row(row: PriceHistory, previous_close=None) -> PricePoint:
    return PricePoint(
        ticker=row.ticker,
        price=row.close,
        as_of=row.timestamp,
        source=row.source,
        open=row.open,
        high=row.high,
        low=row.low,
        close=row.close,
        volume=row.volume,
        previous_close=previous_close,
    )


class StoredMarketData:
    """The port over the cache and the stored history, with no upstream provider."""

    def __init__(self, *, clock=timezone.now) -> None:
        self.clock = clock

    # --- staleness ------------------------------------------------------------------------
    def _due_session(self) -> date:
        """The session date of the newest bar that should be published by now."""
        grace = timedelta(minutes=settings.PAPERTRADE.staleness.grace_minutes)
        return session_date(latest_due_close(self.clock(), grace))

    def _judged(self, point: PricePoint, due_session: date) -> PricePoint:
        stale = session_date(point.as_of) < due_session
        return dataclasses.replace(point, is_stale=stale) if stale != point.is_stale else point

    # --- current prices -------------------------------------------------------------------
    def get_current_price(self, ticker: str) -> PricePoint:
        """Offline, the stored tiers are all there is: the batch read answers."""
        result = self.get_current_prices([ticker])[ticker]
        if isinstance(result, MarketDataError):
            raise result
        return result

    def get_current_prices(self, tickers: Iterable[str]) -> dict[str, PricePoint | MarketDataError]:
        wanted = list(dict.fromkeys(tickers))
        if not wanted:
            return {}
        keys = {current_key(t): t for t in wanted}
        cached = cache.get_many(list(keys))  # one round-trip, whatever the count
        found: dict[str, PricePoint] = {}
        unknown: set[str] = set()
        for key, value in cached.items():
            if isinstance(value, PricePoint):
                found[keys[key]] = value
            elif value == NOT_FOUND:
                unknown.add(keys[key])  # the negative cache: the provider said no such ticker
        missing = [t for t in wanted if t not in found and t not in unknown]
        if missing:
            from_db = latest_bars(missing)  # one query
            if from_db:
                ttl = settings.PAPERTRADE.cache.price_ttl_seconds
                cache.set_many({current_key(t): p for t, p in from_db.items()}, timeout=ttl)
            found.update(from_db)
        due = self._due_session()
        return {t: self._judged(found[t], due) if t in found else TickerNotFound(t) for t in wanted}

    # --- history --------------------------------------------------------------------------
    def get_price_at(self, ticker: str, when: datetime) -> PricePoint:
        row = (
            PriceHistory.objects.daily(ticker)
            .filter(timestamp__lte=when)
            .order_by("-timestamp")
            .first()
        )
        if row is None:
            if not PriceHistory.objects.daily(ticker).exists():
                raise TickerNotFound(ticker)
            raise MarketDataUnavailable(
                f"No price for {ticker} is stored at or before {when:%Y-%m-%d %H:%M} UTC."
            )
        return self._judged(_point_from_row(row), self._due_session())

    def get_price_history(self, ticker: str, start: date, end: date) -> list[PricePoint]:
        rows = list(
            PriceHistory.objects.daily(ticker)
            .filter(timestamp__gte=close_of(start) - timedelta(hours=12))
            .filter(timestamp__lte=close_of(end) + timedelta(hours=12))
            .order_by("timestamp")
        )
        if not rows and not PriceHistory.objects.daily(ticker).exists():
            raise TickerNotFound(ticker)
        return [_point_from_row(r) for r in rows]

    # --- search ---------------------------------------------------------------------------
    def search_symbols(self, query: str) -> list[SymbolMatch]:
        from marketdata.symbols import search_local

        return search_local(query)


def latest_bars(tickers: Sequence[str]) -> dict[str, PricePoint]:
    """The latest daily bar of each ticker, with the close before it, in one query.

    On PostgreSQL this is a UNION ALL of one ``ORDER BY timestamp DESC LIMIT 2`` per ticker, each
    an index range scan of a few rows however long the history; SQLite cannot slice inside a
    compound query, so there a window function ranks the rows instead.
    """
    tickers = list(tickers)
    base = PriceHistory.objects.filter(interval=Interval.DAILY)
    if connection.features.supports_slicing_ordering_in_compound and len(tickers) > 1:
        parts = [base.filter(ticker=t).order_by("-timestamp")[:2] for t in tickers]
        rows = list(parts[0].union(*parts[1:], all=True))
    elif len(tickers) == 1:
        rows = list(base.filter(ticker=tickers[0]).order_by("-timestamp")[:2])
    else:
        rows = list(
            base.filter(ticker__in=tickers)
            .annotate(
                rank=Window(RowNumber(), partition_by=F("ticker"), order_by=F("timestamp").desc())
            )
            .filter(rank__lte=2)
        )
    by_ticker: dict[str, list[PriceHistory]] = {}
    for row in rows:
        by_ticker.setdefault(row.ticker, []).append(row)
    points = {}
    for ticker, bars in by_ticker.items():
        bars.sort(key=lambda r: r.timestamp, reverse=True)
        previous = bars[1].close if len(bars) > 1 else None
        points[ticker] = _point_from_row(bars[0], previous_close=previous)
    return points


def forget_current_prices(tickers: Iterable[str]) -> None:
    """Drop cached current prices after new bars were stored for ``tickers``."""
    cache.delete_many([current_key(t) for t in tickers] + [DEMO_AS_OF_KEY])


def demo_as_of() -> date | None:
    """The session date of the newest stored bar, for the "demo data, as of" banner."""
    value = cache.get(DEMO_AS_OF_KEY)
    if value is None:
        latest = PriceHistory.objects.order_by("-timestamp").values_list("timestamp", flat=True)
        newest = latest.first()
        value = timezone.localdate(newest) if newest else ""
        cache.set(DEMO_AS_OF_KEY, value, timeout=settings.PAPERTRADE.cache.price_ttl_seconds)
    return value or None


def set_upstream_status(*, kind: str, message: str, until: datetime | None) -> None:
    """Remember, for every process, that live prices are held back (and until when)."""
    ttl = 300
    if until is not None:
        ttl = max(1, min(int((until - timezone.now()).total_seconds()), 86400))
    cache.set(
        UPSTREAM_STATUS_KEY,
        {"kind": kind, "message": message, "until": until, "at": timezone.now()},
        ttl,
    )


def upstream_status() -> dict | None:
    """Why live prices are held back right now (quota spent, provider failing), or None."""
    return cache.get(UPSTREAM_STATUS_KEY)


def get_market_data() -> StoredMarketData:
    """The port for this configuration: live when a provider key is set, stored-only without."""
    md = settings.PAPERTRADE.market_data
    if not settings.ALPHA_VANTAGE_API_KEY:
        return _stored()
    return _live(
        settings.ALPHA_VANTAGE_API_KEY,
        settings.ALPHA_VANTAGE_BASE_URL,
        md.request_timeout_seconds,
        md.premium,
    )


@memoize
def _stored() -> StoredMarketData:
    return StoredMarketData()


@memoize
def _live(api_key: str, base_url: str, timeout: float, premium: bool) -> StoredMarketData:
    from marketdata.alpha_vantage import AlphaVantageClient
    from marketdata.live import LiveMarketData

    client = AlphaVantageClient(
        api_key=api_key, base_url=base_url, timeout=timeout, premium=premium
    )
    return LiveMarketData(client=client)
