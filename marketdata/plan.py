"""The refresh plan (PRODUCT §12): which tickers need a fresh bar, in what order, and which
daily run will serve each, from the scheduled share of the quota.

A ticker needs a refresh when its latest stored bar is older than the newest NYSE session that
should be stored by now, or when nothing of it is stored. They are ordered by priority — held,
then tickers with open orders, then people's own watchlists, then the configured watchlist,
then every other stored ticker (backfill) — and, within a priority, the oldest latest bar
first (a ticker that waited yesterday goes ahead today; one with nothing stored goes first of
all). Each daily run serves the next ``calls_per_run`` of them: the scheduled share
(``per_day`` minus the interactive reserve, one call per ticker), no more than the per-minute
limit and the spacing allow in the run's time.

``refresh_prices --plan`` prints it without a call; the scheduled job fetches run 1 of it (one
code path); the status page shows its summary, the next run and the held tickers left waiting.
Four queries: the held tickers, those of open orders, the watched ones, and the latest bar of
every stored ticker (one aggregate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone
from django.utils.module_loading import import_string

from marketdata.alpha_vantage import BULK_LIMIT
from marketdata.models import Interval, PriceHistory
from marketdata.port import session_date
from marketdata.quota import Priority
from marketdata.trading_calendar import latest_due_close, nyse
from marketdata.upstream_status import bulk_applies

RUN_MINUTES = 14  # a run's calls must fit well inside the task's 15-minute time limit
# Why a ticker is in the plan, in the order the plan serves them, with the quota priority its
# calls take: held, then open orders', then people's own watchlists, then config.toml's, then
# stored history.
REASONS = {
    "held": Priority.HELD,
    "orders": Priority.HELD,  # an open order waits on its bar: a fill is a trade
    "watched": Priority.WATCHLIST,
    "watchlist": Priority.WATCHLIST,
    "backfill": Priority.BACKFILL,
}
RANK = {reason: rank for rank, reason in enumerate(REASONS)}


@dataclass(frozen=True, slots=True)
class PlannedTicker:
    ticker: str
    reason: str  # held, orders (an open order's), watched (a person's watchlist), watchlist
    # (config.toml's), backfill
    last_bar: date | None  # the session of its latest stored bar; None: nothing stored
    run: int  # 1: the next daily run
    run_date: date  # the session whose scheduled run serves it

    @property
    def priority(self) -> Priority:
        return REASONS[self.reason]

    def line(self) -> str:
        return f"{self.ticker:<10} {self.reason:<9} run {self.run:<4} {self.run_date:%Y-%m-%d}"


@dataclass(frozen=True)
class RefreshPlan:
    tickers: list[PlannedTicker]
    calls_per_run: int  # what one daily run may spend
    tickers_per_run: int  # the tickers it serves: one a call, or up to 100 with bulk quotes
    due: date  # the newest session whose bar should be stored by now
    fresh: int  # tracked or stored tickers that need nothing

    @property
    def runs(self) -> int:
        return math.ceil(len(self.tickers) / self.tickers_per_run) if self.tickers_per_run else 0

    def run(self, number: int) -> list[PlannedTicker]:
        return [t for t in self.tickers if t.run == number]

    def held_waiting(self) -> list[PlannedTicker]:
        """Held tickers whose turn is after the next run: more than one session stale by then."""
        return [t for t in self.tickers if t.reason == "held" and t.run > 1]

    def summary(self) -> str:
        coverage = f"full coverage in {self.runs} run{'s' if self.runs != 1 else ''}"
        if not self.calls_per_run and self.tickers:
            coverage = "no coverage: the scheduled share of the quota is 0"
        bulk = (
            f" (bulk quotes: up to {self.tickers_per_run // self.calls_per_run} tickers a call)"
            if self.calls_per_run and self.tickers_per_run > self.calls_per_run
            else ""
        )
        return (
            f"plan: {len(self.tickers)} tickers need a refresh, {self.calls_per_run} scheduled "
            f"calls a day{bulk}, {coverage}"
        )


def calls_per_run() -> int:
    """The calls one daily run may make: the day's scheduled share, and no more than the
    minute limit and the spacing let through in RUN_MINUTES."""
    q = settings.PAPERTRADE.quota
    share = max(0, q.per_day - q.interactive_reserve)
    by_minute = q.per_minute * RUN_MINUTES
    by_spacing = (
        int(RUN_MINUTES * 60 / q.min_seconds_between_calls)
        if q.min_seconds_between_calls
        else share
    )
    return min(share, by_minute, by_spacing)


def held_tickers() -> list[str]:
    return _tickers_of("PAPERTRADE_HELD_TICKERS")


def order_tickers() -> list[str]:
    return _tickers_of("PAPERTRADE_ORDER_TICKERS")


def watched_tickers() -> list[str]:
    return _tickers_of("PAPERTRADE_WATCHED_TICKERS")


@dataclass(frozen=True)
class PeopleTickers:
    """What people's portfolios ask to be refreshed: held tickers, those of open orders, and
    those on their watchlists (three queries, read once by a caller that needs them twice)."""

    held: list[str]
    orders: list[str]
    watched: list[str]


def people_tickers() -> PeopleTickers:
    return PeopleTickers(held_tickers(), order_tickers(), watched_tickers())


def _tickers_of(setting: str) -> list[str]:
    """The tickers a dotted-path setting names (marketdata imports nothing from portfolios)."""
    path = getattr(settings, setting, "")
    return list(dict.fromkeys(import_string(path)())) if path else []


def refresh_plan(
    *, now: datetime | None = None, people: PeopleTickers | None = None
) -> RefreshPlan:
    now = now or timezone.now()
    grace = timedelta(minutes=settings.PAPERTRADE.staleness.grace_minutes)
    due = session_date(latest_due_close(now, grace))
    people = people or people_tickers()
    watch = list(dict.fromkeys(settings.PAPERTRADE.refresh.watchlist))
    latest = {
        ticker: session_date(last)
        for ticker, last in PriceHistory.objects.filter(interval=Interval.DAILY)
        .order_by()
        .values_list("ticker")
        .annotate(last=Max("timestamp"))
    }
    reason: dict[str, str] = {}
    for ticker in people.held:
        reason.setdefault(ticker, "held")
    for ticker in people.orders:
        reason.setdefault(ticker, "orders")
    for ticker in people.watched:
        reason.setdefault(ticker, "watched")
    for ticker in watch:
        reason.setdefault(ticker, "watchlist")
    for ticker in latest:
        reason.setdefault(ticker, "backfill")
    stale = [t for t in reason if latest.get(t) is None or latest[t] < due]
    stale.sort(key=lambda t: (RANK[reason[t]], latest.get(t) or date.min, t))

    calls = calls_per_run()
    per_run = calls * BULK_LIMIT if bulk_applies() else calls  # tickers one run serves
    runs = _run_dates(now, math.ceil(len(stale) / per_run) if per_run else 0)
    planned = [
        PlannedTicker(
            ticker=t,
            reason=reason[t],
            last_bar=latest.get(t),
            run=i // per_run + 1,
            run_date=runs[i // per_run],
        )
        for i, t in enumerate(stale)
        if per_run
    ]
    if not per_run:  # nothing can be fetched on schedule: every ticker waits, unplanned
        planned = [PlannedTicker(t, reason[t], latest.get(t), 0, due) for t in stale]
    return RefreshPlan(
        tickers=planned,
        calls_per_run=calls,
        tickers_per_run=per_run,
        due=due,
        fresh=len(reason) - len(stale),
    )


def _run_dates(now: datetime, count: int) -> list[date]:
    """The sessions of the next ``count`` scheduled runs: today's, if its run time (the
    configured cron's hour and minute, in its time zone) is still ahead, then each session's."""
    if count <= 0:
        return []
    import pandas as pd  # loaded with the calendar

    r = settings.PAPERTRADE.refresh
    minute, hour = (int(x) if x.isdigit() else 0 for x in r.cron.split()[:2])
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(r.timezone))
    today = local.date()
    start = today if (local.hour, local.minute) < (hour, minute) else today + timedelta(days=1)
    cal = nyse()
    first = cal.date_to_session(pd.Timestamp(min(start, cal.last_session.date())), "next")
    available = len(cal.sessions_in_range(first, cal.last_session))
    days = [s.date() for s in cal.sessions_window(first, min(count, available))]
    while len(days) < count:  # past the calendar's end (years of runs): weekdays will do
        day = days[-1] + timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        days.append(day)
    return days
