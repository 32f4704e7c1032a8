"""The staff's market-data status page, read in one go: quota, last refresh, cache hit ratio,
per-ticker freshness, coverage gaps and suspected unrecorded splits. Derived on read (nothing
here is stored).

Its cost does not grow with the number of tickers: one query for the latest bars (an index
probe per ticker), one aggregate for every ticker's stored range, one for the dates of the
tickers with gaps, one window query for the suspected splits (cached), the plan's, the quota's
own read, and one cache round-trip for the last refresh and the hit counters. With 1,000
tickers × a year of bars the page takes about 150 ms (bench/thousand_tickers.py): the plan's
aggregate, the ranges' aggregate and the freshness table's HTML, about a third each.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    Value,
    When,
    Window,
)
from django.db.models.functions import Lag, RowNumber, TruncDate
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from marketdata import cache_stats, price_cache
from marketdata.models import CorporateAction, Interval, PriceHistory
from marketdata.plan import RefreshPlan, people_tickers, refresh_plan
from marketdata.port import NEW_YORK, ActionKind, MarketDataError, Source, session_date
from marketdata.quota import Priority, QuotaStatus, get_quota
from marketdata.refresh import LAST_REFRESH_KEY, RefreshSummary, tracked_tickers
from marketdata.trading_calendar import latest_due_close, nyse
from marketdata.upstream_status import bulk_refused, upstream_status
from marketdata.wiring import is_live

if TYPE_CHECKING:
    import pandas as pd

MISSING_SHOWN = 10  # missing sessions listed per ticker; the rest are counted
PLAN_SHOWN = 50  # tickers of the next run listed; the rest are counted

# A day-over-day move beyond ±40 % with no split recorded on that session is listed as a
# suspected unrecorded split (PRODUCT §3.11): a close above 1.4 or below 0.6 times the one before.
SPLIT_JUMP_UP = Decimal("1.4")
SPLIT_JUMP_DOWN = Decimal("0.6")
SPLITS_LOOKBACK = timedelta(days=730)  # only bars this recent are read (the page stays fast)
SPLITS_SHOWN = 50  # suspected splits listed on the page, newest first; the rest are counted


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


def freshness_rows(tickers: list[TickerFreshness]) -> str:
    """The freshness table's rows, built in one pass: with a thousand tickers the template's
    own loop cost more than everything else on the page."""
    if not tickers:
        return mark_safe('<tr><td colspan="6">No held tickers and an empty watchlist.</td></tr>')

    def state(t: TickerFreshness) -> str:
        if t.missing:
            return mark_safe('<span class="badge missing">missing</span>')
        if t.stale:
            return mark_safe('<span class="badge stale">stale</span>')
        return "fresh"

    return format_html_join(
        "\n",
        '<tr data-ticker="{}"><th scope="row">{}</th><td>{}</td><td>{}</td><td>{}</td>'
        "<td>{}</td><td>{}</td></tr>",
        (
            (
                t.ticker,
                t.ticker,
                "held" if t.held else "watchlist",
                f"{t.last_bar:%a %Y-%m-%d}" if t.last_bar else "none stored",
                f"{t.expected_bar:%a %Y-%m-%d}",
                t.source_label or "—",
                state(t),
            )
            for t in tickers
        ),
    )


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
class SuspectedSplit:
    """A day-over-day move beyond ±40 % with no split recorded on its session."""

    ticker: str
    session: date  # the session of the bar that moved
    previous_close: Decimal  # the close of the ticker's bar before it, as traded
    close: Decimal
    change_pct: Decimal  # (close / previous close - 1) * 100, to 0.1
    ratio: str  # the split it looks like: "10-for-1", "3-for-2", "1-for-2" (a reverse split)


def implied_ratio(previous_close: Decimal, close: Decimal) -> str:
    """The simple split ratio nearest to a move from ``previous_close`` to ``close``.

    A fall is an n-for-1 split (n new shares for each old one: 1,112.17 to 110.29 is 10-for-1),
    a rise a 1-for-n reverse split; a factor under 1.75 reads as 3-for-2 (or 2-for-3).
    """
    factor = previous_close / close
    forward = factor >= 1
    size = factor if forward else 1 / factor
    if size < Decimal("1.75"):
        new, old = 3, 2
    else:
        new, old = int(size.to_integral_value(ROUND_HALF_UP)), 1
    return f"{new}-for-{old}" if forward else f"{old}-for-{new}"


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
    suspected_splits: list[SuspectedSplit]  # the newest SPLITS_SHOWN of them
    suspected_split_count: int  # all of them
    plan: RefreshPlan  # which run serves each ticker that needs a refresh
    bulk_refused: str | None  # why the key may not use bulk quotes, when it was refused

    @property
    def scheduled_per_day(self) -> int:
        return self.per_day - self.interactive_reserve

    @property
    def next_run(self) -> list:
        return self.plan.run(1)[:PLAN_SHOWN]

    @property
    def freshness_rows(self) -> str:
        return freshness_rows(self.tickers)

    @property
    def stale_count(self) -> int:
        return sum(1 for t in self.tickers if t.stale)

    @property
    def missing_count(self) -> int:
        return sum(1 for t in self.tickers if t.missing)


def market_data_status(*, now: datetime | None = None) -> MarketDataStatus:
    now = now or timezone.now()
    people = people_tickers()  # once, for the freshness table and the plan
    plan = tracked_tickers(people)
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
    splits = cached_suspected_splits(now=now)
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
        suspected_splits=splits[:SPLITS_SHOWN],
        suspected_split_count=len(splits),
        plan=refresh_plan(now=now, people=people),
        bulk_refused=bulk_refused() if settings.PAPERTRADE.market_data.bulk_quotes else None,
    )


def _freshness(plan: list[tuple[str, Priority]], now: datetime) -> list[TickerFreshness]:
    grace = timedelta(minutes=settings.PAPERTRADE.staleness.grace_minutes)
    expected = session_date(latest_due_close(now, grace))
    bars = latest_bars([t for t, _ in plan])  # one query
    rows = []
    for ticker, priority in plan:
        moment, source = bars.get(ticker, (None, ""))
        rows.append(
            TickerFreshness(
                ticker=ticker,
                held=priority == Priority.HELD,
                last_bar=session_date(moment) if moment else None,
                source=source,
                expected_bar=expected,
            )
        )
    return rows


def latest_bars(tickers: list[str]) -> dict[str, tuple[datetime, str]]:
    """The moment and source of each ticker's newest daily bar, in one query.

    On PostgreSQL, one ``ORDER BY timestamp DESC LIMIT 1`` index probe per ticker (a lateral
    join over the list): about 10 ms for 1,000 tickers however long their histories.
    ``latest_points`` would also read the close before and the split of each (a ``UNION ALL``
    of one query per ticker, which Django and PostgreSQL take a second to put together for
    1,000); the page needs neither. Elsewhere (SQLite, the embedded default), a window function
    ranks the bars.
    """
    if not tickers:
        return {}
    connection = connections[PriceHistory.objects.db]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT t.ticker, bar."timestamp", bar.source
                FROM unnest(%s::text[]) AS t (ticker)
                CROSS JOIN LATERAL (
                    SELECT p."timestamp", p.source FROM {PriceHistory._meta.db_table} p
                    WHERE p.ticker = t.ticker AND p."interval" = %s
                    ORDER BY p."timestamp" DESC LIMIT 1
                ) AS bar
                """,  # noqa: S608 (only the model's own table name is interpolated)
                [list(tickers), Interval.DAILY],
            )
            return {ticker: (moment, source) for ticker, moment, source in cursor.fetchall()}
    rank = Window(RowNumber(), partition_by=F("ticker"), order_by=F("timestamp").desc())
    rows = (
        PriceHistory.objects.filter(interval=Interval.DAILY, ticker__in=tickers)
        .annotate(rank=rank)
        .filter(rank=1)
        .values_list("ticker", "timestamp", "source")
    )
    return {ticker: (moment, source) for ticker, moment, source in rows}


def coverage_gaps(tickers: list[str]) -> list[CoverageGap]:
    """Trading days (NYSE sessions) missing inside each ticker's stored daily range.

    One aggregate query counts each ticker's bars against the sessions between its first and
    last bar; only tickers whose counts disagree have their dates read (one more query).
    """
    if not tickers:
        return []
    daily = PriceHistory.objects.filter(interval=Interval.DAILY, ticker__in=tickers)
    ranges = list(
        daily.values("ticker")  # the sessions of the first and last bars, as dates
        .annotate(
            first=TruncDate(Min("timestamp"), tzinfo=NEW_YORK),
            last=TruncDate(Max("timestamp"), tzinfo=NEW_YORK),
            bars=Count("id"),
        )
        .order_by("ticker")
        .values_list("ticker", "first", "last", "bars")
    )
    if not ranges:
        return []
    # The sessions of every range at once, counted per ticker by bisection (asking the
    # calendar once per ticker took 30 ms for 1,000).
    sessions = list(_sessions(min(r[1] for r in ranges), max(r[2] for r in ranges)).date)
    suspects = {}
    for ticker, first, last, bars in ranges:
        if bars != bisect_right(sessions, last) - bisect_left(sessions, first):
            suspects[ticker] = (first, last, bars)
    if not suspects:
        return []
    stored: dict[str, set[date]] = {t: set() for t in suspects}
    # Not ``daily``: with its list of every tracked ticker as well, PostgreSQL misjudged the
    # two lists together and scanned every bar (20–38 ms for 1,000 tickers; 2 ms without).
    for ticker, session in (
        PriceHistory.objects.filter(interval=Interval.DAILY, ticker__in=list(suspects))
        .annotate(session=TruncDate("timestamp", tzinfo=NEW_YORK))
        .values_list("ticker", "session")
    ):
        stored[ticker].add(session)
    gaps = []
    for ticker, (first, last, bars) in suspects.items():
        span = sessions[bisect_left(sessions, first) : bisect_right(sessions, last)]
        missing = [d for d in span if d not in stored[ticker]]
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


def suspected_splits(*, now: datetime | None = None) -> list[SuspectedSplit]:
    """Day-over-day moves beyond ±40 % in the daily bars of the last two years (every ticker
    stored, not only the tracked ones) with no SPLIT recorded on the bar's session, newest
    first. One query; the caller shows as many as it wants (there are normally none).

    ``LAG(close) OVER (PARTITION BY ticker ORDER BY timestamp)`` gives each bar the close
    before it. The move and the split lookup are one CASE in the same select, which Django
    filters on outside the window (``SELECT … FROM (… window …) WHERE qual``): the
    ``NOT EXISTS`` of the corporate actions is asked only for the bars that moved that much. A
    ``NOT EXISTS`` filter of its own would be applied under the window: the split's bar would
    drop out, and the day after it would be compared with the close before the split.

    The database does not sort or limit (the inner query would repeat the sort over every bar
    of the two years); the few rows found are sorted here. The first bar of the two years has
    no previous one in the window, so a move on that day is not seen.
    """
    now = now or timezone.now()
    recorded = CorporateAction.objects.filter(
        kind=ActionKind.SPLIT, ticker=OuterRef("ticker"), date=OuterRef("session")
    )
    rose = Q(close__gt=F("previous") * SPLIT_JUMP_UP)
    fell = Q(close__lt=F("previous") * SPLIT_JUMP_DOWN)
    rows = (
        PriceHistory.objects.filter(interval=Interval.DAILY, timestamp__gte=now - SPLITS_LOOKBACK)
        .alias(session=TruncDate("timestamp", tzinfo=NEW_YORK))
        .annotate(
            previous=Window(Lag("close"), partition_by=F("ticker"), order_by=F("timestamp").asc())
        )
        .annotate(
            suspect=Case(
                When(rose | fell, then=~Exists(recorded)),
                default=Value(False),
                output_field=BooleanField(),
            )
        )
        .filter(suspect=True)
        .order_by()
        .values_list("ticker", "timestamp", "previous", "close")
    )
    found = [
        SuspectedSplit(
            ticker=ticker,
            session=session_date(moment),
            previous_close=previous,
            close=close,
            change_pct=((close / previous - 1) * 100).quantize(Decimal("0.1"), ROUND_HALF_UP),
            ratio=implied_ratio(previous, close),
        )
        for ticker, moment, previous, close in rows
    ]
    found.sort(key=lambda s: s.ticker)
    found.sort(key=lambda s: s.session, reverse=True)
    return found


SUSPECTS_KEY = "md:v1:suspected-splits:{version}:{day}"


def cached_suspected_splits(*, now: datetime) -> list[SuspectedSplit]:
    """``suspected_splits``, read again only when bars or actions were stored
    (``prices_version``) or the day changed: the window over two years of every ticker's bars
    is the status page's one costly query (about 0.8 s on 730,000 bars)."""
    key = SUSPECTS_KEY.format(version=price_cache.prices_version(), day=now.date())
    found = cache.get(key)
    if found is None:
        found = suspected_splits(now=now)
        cache.set(key, found, timeout=24 * 60 * 60)
    return found


def _sessions(first: date, last: date) -> pd.DatetimeIndex:
    import pandas as pd  # loaded with the calendar (see trading_calendar)

    cal = nyse()
    start = max(pd.Timestamp(first), cal.first_session)
    end = min(pd.Timestamp(last), cal.last_session)
    if start > end:
        return pd.DatetimeIndex([])
    return cal.sessions_in_range(start, end)
