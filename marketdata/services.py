"""The price port's implementation: Django cache (hot) → ``PriceHistory`` (warm).

A database hit warms the cache. Cached entries hold the bar as stored; staleness is derived on
every read against the NYSE calendar, never stored. Cache errors degrade to misses (the Redis
cache is configured with ``IGNORE_EXCEPTIONS``), so the database tier still answers.
"""

from __future__ import annotations

import dataclasses
import threading
import time as time_module
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cache as memoize

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import BigIntegerField, F, QuerySet, Window
from django.db.models.functions import Cast, Extract, RowNumber
from django.utils import timezone

from marketdata.models import Interval, PriceHistory
from marketdata.port import (
    MarketDataError,
    MarketDataUnavailable,
    PricePoint,
    SymbolMatch,
    TickerNotFound,
    daily_points,
)
from marketdata.trading_calendar import day_start, latest_due_close, session_date

# Cache keys: one family, versioned by the prefix; bump the version when the value shape changes.
CURRENT_KEY = "md:v1:current:{ticker}"  # a PricePoint, or NOT_FOUND (the negative cache)
DEMO_AS_OF_KEY = "md:v1:demo-as-of"
UPSTREAM_STATUS_KEY = "md:v1:upstream-status"
NOT_FOUND = "not-found"
# Counters of batch current-price reads, for the status page's hit ratio (see count_cache_reads).
CACHE_HITS_KEY = "md:v1:stats:current-hits"
CACHE_MISSES_KEY = "md:v1:stats:current-misses"
CACHE_STATS_SINCE_KEY = "md:v1:stats:since"  # epoch seconds of the first counted read


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
    def _due_session(self, at: datetime | None = None) -> date:
        """The session date of the newest bar that should be published by now (or by ``at``,
        when that is earlier: history is judged against its own moment, not the present)."""
        grace = timedelta(minutes=settings.PAPERTRADE.staleness.grace_minutes)
        now = self.clock()
        return session_date(latest_due_close(min(at, now) if at else now, grace))

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
        count_cache_reads(hits=len(wanted) - len(missing), misses=len(missing))
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
        """The last daily bar at or before ``when``, with the close before it.

        Its staleness is judged against ``when``, not now: Saturday's price is Friday's close,
        fresh; a moment after the last stored bar whose session's bar is due gets that bar marked
        stale. Raises TickerNotFound when nothing is stored for ``ticker``, and
        MarketDataUnavailable when ``when`` is before its first stored bar.
        """
        point = self._stored_price_at(ticker, when)
        if point is None:
            raise TickerNotFound(ticker)
        return point

    def _stored_price_at(self, ticker: str, when: datetime) -> PricePoint | None:
        """``get_price_at`` from the database alone; None when nothing is stored for ``ticker``."""
        # One index range scan (ticker, interval, timestamp) backwards from ``when``: two rows.
        rows = list(
            PriceHistory.objects.daily(ticker)
            .filter(timestamp__lte=when)
            .order_by("-timestamp")[:2]
        )
        if not rows:
            first = (
                PriceHistory.objects.daily(ticker)
                .order_by("timestamp")
                .values_list("timestamp", flat=True)
                .first()
            )
            if first is None:
                return None
            raise MarketDataUnavailable(
                f"No price for {ticker} is stored at or before {when:%Y-%m-%d %H:%M} UTC: its "
                f"first stored bar is {session_date(first):%Y-%m-%d}."
            )
        previous = rows[1].close if len(rows) > 1 else None
        return self._judged(_point_from_row(rows[0], previous), self._due_session(at=when))

    def get_price_history(self, ticker: str, start: date, end: date) -> list[PricePoint]:
        """Daily bars with session dates from ``start`` to ``end`` inclusive, oldest first: one
        index range scan; TickerNotFound when nothing at all is stored for ``ticker``."""
        points = self._stored_history(ticker, start, end)
        if points is None:
            raise TickerNotFound(ticker)
        return points

    def _stored_history(self, ticker: str, start: date, end: date) -> list[PricePoint] | None:
        """``get_price_history`` from the database alone; None when nothing is stored."""
        points = daily_points(ticker, history_rows(ticker, start, end))
        if not points and not PriceHistory.objects.daily(ticker).exists():
            return None
        return points

    # --- search ---------------------------------------------------------------------------
    def search_symbols(self, query: str) -> list[SymbolMatch]:
        from marketdata.symbols import search_local

        return search_local(query)


HISTORY_FIELDS = ("timestamp", "open", "high", "low", "close", "volume", "source")


def history_rows(ticker: str, start: date, end: date) -> Iterable[tuple]:
    """(timestamp, open, high, low, close, volume, source) of the daily bars of ``ticker`` with
    session dates ``start``..``end``, oldest first (tuples: model instances cost more than the
    query on a long range).

    On PostgreSQL the timestamps are read as whole seconds since the epoch and made datetimes
    here: Django reads ``timestamptz`` through psycopg's pure-Python parser (to set the
    connection's time zone), which cost more than the query itself for twenty years of bars.
    """
    query = history_query(ticker, start, end)
    if connection.vendor != "postgresql":
        return query.values_list(*HISTORY_FIELDS)
    seconds = Cast(Extract("timestamp", "epoch", tzinfo=UTC), BigIntegerField())
    at = datetime.fromtimestamp
    return (
        (at(epoch, UTC), *rest) for epoch, *rest in query.values_list(seconds, *HISTORY_FIELDS[1:])
    )


def history_query(ticker: str, start: date, end: date) -> QuerySet[PriceHistory]:
    """The daily bars of ``ticker`` with session dates ``start``..``end``, oldest first.

    A bar is stamped at its session's close (16:00 New York), so the range is the New York days
    from ``start`` to ``end``. On PostgreSQL this is one range scan of ``pricehistory_unique_bar``
    (ticker, interval, timestamp): see docs/history-queries.md for the plans.
    """
    return (
        PriceHistory.objects.daily(ticker)
        .filter(timestamp__gte=day_start(start), timestamp__lt=day_start(end + timedelta(days=1)))
        .order_by("timestamp")
    )


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


def counts_cache_reads() -> bool:
    """True when the cache can count reads cheaply: an atomic increment on Redis."""
    from django.core.cache import caches
    from django_redis.cache import RedisCache

    return isinstance(caches["default"], RedisCache)


# Hits and misses are added up in this process and sent to Redis at most every
# CACHE_STATS_FLUSH_SECONDS, so a page costs no extra round-trip for them. Accepted imprecision:
# counts not yet sent are lost if the process dies, and the ratio lags by that interval.
CACHE_STATS_FLUSH_SECONDS = 10.0
_pending_reads = {"hits": 0, "misses": 0, "since": 0.0}
_pending_lock = threading.Lock()


def count_cache_reads(*, hits: int, misses: int) -> None:
    """Add one batch read's hits and misses to the shared counters (see above).

    Counted on Redis only (INCRBY, atomic across processes). On the embedded database cache an
    increment is a read plus a write of the cache table, not atomic; there the status page says
    the ratio is not measured. Counting never fails a page: a Redis error is ignored, like every
    cache error.
    """
    if not counts_cache_reads() or not (hits or misses):
        return
    now = time_module.monotonic()
    with _pending_lock:
        _pending_reads["hits"] += hits
        _pending_reads["misses"] += misses
        if not _pending_reads["since"]:
            _pending_reads["since"] = now
        if now - _pending_reads["since"] < CACHE_STATS_FLUSH_SECONDS:
            return
        hits, misses = _pending_reads["hits"], _pending_reads["misses"]
        _pending_reads.update(hits=0, misses=0, since=now)
    flush_cache_reads(hits=hits, misses=misses)


def flush_cache_reads(*, hits: int | None = None, misses: int | None = None) -> None:
    """Send counted reads to Redis now: one pipelined round-trip."""
    import redis
    from django_redis import get_redis_connection

    if hits is None:
        with _pending_lock:
            hits, misses = _pending_reads["hits"], _pending_reads["misses"]
            _pending_reads.update(hits=0, misses=0, since=0.0)
    if not (hits or misses):
        return
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        if hits:
            pipe.incrby(cache.make_key(CACHE_HITS_KEY), hits)
        if misses:
            pipe.incrby(cache.make_key(CACHE_MISSES_KEY), misses)
        # A bare int is what django-redis stores for ints, so cache.get reads it back.
        pipe.set(cache.make_key(CACHE_STATS_SINCE_KEY), int(timezone.now().timestamp()), nx=True)
        pipe.execute()
    except redis.RedisError:
        pass


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
