"""The staff's market-data status page, read in one go: quota, last refresh, cache hit ratio,
per-ticker freshness and coverage gaps. Derived on read (nothing here is stored).

Its cost does not grow with the number of tickers: one query for the latest bars, one
aggregate for every ticker's stored range, one for the dates of the tickers with gaps, the
quota's own read, and one cache round-trip for the last refresh and the hit counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Min
from django.utils import timezone

from marketdata import cache_stats
from marketdata.models import Interval, PriceHistory
from marketdata.port import MarketDataError, Source, session_date
from marketdata.quota import Priority, QuotaStatus, get_quota
from marketdata.refresh import LAST_REFRESH_KEY, RefreshSummary, tracked_tickers
from marketdata.trading_calendar import latest_due_close, nyse
from marketdata.upstream_status import upstream_status
from marketdata.wiring import is_live

if TYPE_CHECKING:
    import pandas as pd

MISSING_SHOWN = 10  # missing sessions listed per ticker; the rest are counted


@dataclass(frozen=True)
class TickerFreshness:
    ticker: str
    held: bool
    last_bar: date | None  # session date of the newest stored bar
    source: str
    expected_bar: date  # the newest session whose bar is due by now

    @property
    def missing(self) -> bool:
        return self.last_bar is None

    @property
    def stale(self) -> bool:
        """Some bar is stored, and a newer one is due."""
        return self.last_bar is not None and self.last_bar < self.expected_bar

    @property
    def source_label(self) -> str:
        return Source.LABELS.get(self.source, self.source)


@dataclass(frozen=True)
class CoverageGap:
    """NYSE sessions missing between a ticker's first and last stored bar."""

    ticker: str
    first: date
    last: date
    bars: int
    missing_count: int
    missing: tuple[date, ...]  # the first MISSING_SHOWN of them


@dataclass(frozen=True)
class CacheReads:
    counted: bool  # False on the embedded database cache (see marketdata.cache_stats)
    hits: int = 0
    misses: int = 0
    since: datetime | None = None

    @property
    def ratio(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


@dataclass(frozen=True)
class MarketDataStatus:
    now: datetime
    live: bool
    quota: QuotaStatus | None
    quota_error: str
    spacing_seconds: float
    per_minute: int
    per_day: int
    interactive_reserve: int
    last_refresh: RefreshSummary | None
    cache_reads: CacheReads
    tickers: list[TickerFreshness]
    gaps: list[CoverageGap]
    upstream: dict | None

    @property
    def scheduled_per_day(self) -> int:
        return self.per_day - self.interactive_reserve

    @property
    def stale_count(self) -> int:
        return sum(1 for t in self.tickers if t.stale)

    @property
    def missing_count(self) -> int:
        return sum(1 for t in self.tickers if t.missing)


def market_data_status(*, now: datetime | None = None) -> MarketDataStatus:
    now = now or timezone.now()
    plan = tracked_tickers()
    tickers = [t for t, _ in plan]

    quota, quota_error = None, ""
    try:
        quota = get_quota().status()
    except MarketDataError as exc:  # the quota's store is unreachable
        quota_error = str(exc)

    if cache_stats.counted():
        cache_stats.flush()  # this process's reads not yet sent (other processes lag ≤ 10 s)
    cached = cache.get_many(
        [LAST_REFRESH_KEY, cache_stats.HITS_KEY, cache_stats.MISSES_KEY, cache_stats.SINCE_KEY]
    )
    since = cached.get(cache_stats.SINCE_KEY)
    reads = CacheReads(
        counted=cache_stats.counted(),
        hits=int(cached.get(cache_stats.HITS_KEY) or 0),
        misses=int(cached.get(cache_stats.MISSES_KEY) or 0),
        since=datetime.fromtimestamp(since, UTC) if isinstance(since, int) else None,
    )
    last = cached.get(LAST_REFRESH_KEY)

    q = settings.PAPERTRADE.quota
    return MarketDataStatus(
        now=now,
        live=is_live(),
        quota=quota,
        quota_error=quota_error,
        spacing_seconds=q.min_seconds_between_calls,
        per_minute=q.per_minute,
        per_day=q.per_day,
        interactive_reserve=q.interactive_reserve,
        last_refresh=last if isinstance(last, RefreshSummary) else None,
        cache_reads=reads,
        tickers=_freshness(plan, now),
        gaps=coverage_gaps(tickers),
        upstream=upstream_status() if is_live() else None,
    )


def _freshness(plan: list[tuple[str, Priority]], now: datetime) -> list[TickerFreshness]:
    grace = timedelta(minutes=settings.PAPERTRADE.staleness.grace_minutes)
    expected = session_date(latest_due_close(now, grace))
    bars = PriceHistory.objects.latest_points([t for t, _ in plan])  # one query
    rows = []
    for ticker, priority in plan:
        bar = bars.get(ticker)
        rows.append(
            TickerFreshness(
                ticker=ticker,
                held=priority == Priority.HELD,
                last_bar=session_date(bar.as_of) if bar else None,
                source=bar.source if bar else "",
                expected_bar=expected,
            )
        )
    return rows


def coverage_gaps(tickers: list[str]) -> list[CoverageGap]:
    """Trading days (NYSE sessions) missing inside each ticker's stored daily range.

    One aggregate query counts each ticker's bars against the sessions between its first and
    last bar; only tickers whose counts disagree have their dates read (one more query).
    """
    if not tickers:
        return []
    daily = PriceHistory.objects.filter(interval=Interval.DAILY, ticker__in=tickers)
    ranges = daily.values("ticker").annotate(
        first=Min("timestamp"), last=Max("timestamp"), bars=Count("id")
    )
    suspects = {}
    for row in ranges.order_by("ticker"):
        first, last = session_date(row["first"]), session_date(row["last"])
        if row["bars"] != len(_sessions(first, last)):  # a DatetimeIndex: cheap to count
            suspects[row["ticker"]] = (first, last, row["bars"])
    if not suspects:
        return []
    stored: dict[str, set[date]] = {t: set() for t in suspects}
    for ticker, moment in daily.filter(ticker__in=list(suspects)).values_list(
        "ticker", "timestamp"
    ):
        stored[ticker].add(session_date(moment))
    gaps = []
    for ticker, (first, last, bars) in suspects.items():
        missing = [d for d in _sessions(first, last).date if d not in stored[ticker]]
        if missing:
            gaps.append(
                CoverageGap(
                    ticker=ticker,
                    first=first,
                    last=last,
                    bars=bars,
                    missing_count=len(missing),
                    missing=tuple(missing[:MISSING_SHOWN]),
                )
            )
    return gaps


def _sessions(first: date, last: date) -> pd.DatetimeIndex:
    import pandas as pd  # loaded with the calendar (see trading_calendar)

    cal = nyse()
    start = max(pd.Timestamp(first), cal.first_session)
    end = min(pd.Timestamp(last), cal.last_session)
    if start > end:
        return pd.DatetimeIndex([])
    return cal.sessions_in_range(start, end)
