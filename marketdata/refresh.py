"""The scheduled price refresh: every held ticker, then the watchlist, within the quota's share.

``refresh_prices`` is the one job behind the Celery beat task, ``manage.py refresh_prices`` and
the status page's "last refresh". It

- asks which tickers are held (``settings.PAPERTRADE_HELD_TICKERS``, a dotted path: marketdata
  imports nothing from portfolios) and appends the configured watchlist, in that order, once each;
- skips every ticker whose stored latest bar is fresh (NYSE calendar, one query): on a holiday,
  or on a second run the same day, it makes no upstream call at all;
- skips a ticker the provider said does not exist (the negative cache) without spending a call;
- fetches the rest one by one through the shared quota at scheduled priority (``HELD``, then
  ``WATCHLIST``): the quota refuses scheduled calls past ``per_day - interactive_reserve``, and
  what was not fetched then is reported as *deferred* (tomorrow's run, or ``import_prices``,
  picks it up);
- continues past a failing ticker, and logs one summary line (logger ``marketdata.refresh``).

Idempotent: bars are upserted, so a task re-delivered after a crash (``acks_late``) only
re-checks freshness.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.module_loading import import_string

from marketdata.live import LiveMarketData, fetch_tickers
from marketdata.port import MarketDataError
from marketdata.quota import Priority, get_quota
from marketdata.services import NOT_FOUND, current_key, get_market_data, latest_bars
from marketdata.tickers import InvalidTicker, normalize_ticker
from marketdata.trading_calendar import latest_due_close, session_date

logger = logging.getLogger(__name__)

LAST_REFRESH_KEY = "md:v1:last-refresh"  # the last scheduled RefreshSummary, for the status page
NO_PROVIDER = "no provider configured"


@dataclass(frozen=True)
class RefreshSummary:
    """What one refresh run did. Ticker lists are in the order they were considered."""

    started_at: datetime
    finished_at: datetime
    refreshed: tuple[str, ...] = ()
    skipped_fresh: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)  # ticker -> why
    deferred: tuple[str, ...] = ()  # not tried: the day's scheduled share of the quota is spent
    quota_left_day: int | None = None  # calls left today for anyone (None: quota unreadable)
    note: str = ""  # why the run stopped early or did nothing

    @property
    def ok(self) -> bool:
        return not self.failed

    def line(self) -> str:
        left = "n/a" if self.quota_left_day is None else self.quota_left_day
        text = (
            f"refreshed={len(self.refreshed)} skipped_fresh={len(self.skipped_fresh)} "
            f"failed={len(self.failed)} deferred={len(self.deferred)} quota_left_day={left}"
        )
        return text + (f' note="{self.note}"' if self.note else "")


def tracked_tickers() -> list[tuple[str, Priority]]:
    """Held tickers (``Priority.HELD``) then the watchlist's others (``WATCHLIST``), once each."""
    path = getattr(settings, "PAPERTRADE_HELD_TICKERS", "")
    held = list(dict.fromkeys(import_string(path)())) if path else []
    watch = [t for t in dict.fromkeys(settings.PAPERTRADE.refresh.watchlist) if t not in held]
    return [(t, Priority.HELD) for t in held] + [(t, Priority.WATCHLIST) for t in watch]


def refresh_prices(
    *, now: datetime | None = None, log: Callable[[str], None] | None = None
) -> RefreshSummary:
    """Refresh every stale held and watchlist ticker within the quota's scheduled share.

    ``now`` is the moment freshness is judged at (default: now); ``log`` receives one line per
    fetched ticker (the command prints them). Stores the summary for the status page.
    """
    summary = _run(tracked_tickers, now=now, log=log)
    logger.info("run=scheduled %s", summary.line())
    cache.set(LAST_REFRESH_KEY, summary, timeout=None)
    return summary


def refresh_tickers(
    *, tickers: Iterable[str], log: Callable[[str], None] | None = None
) -> RefreshSummary:
    """Refresh the stale ones of ``tickers`` (the admin's "Refresh selected tickers").

    Backfill priority, like ``import_prices TICKER``: an operator's batch never spends the calls
    kept for people looking up prices.
    """
    wanted, invalid = [], {}
    for raw in tickers:
        try:
            wanted.append(normalize_ticker(raw))
        except InvalidTicker as exc:
            invalid[str(raw)] = str(exc)

    def plan() -> list[tuple[str, Priority]]:
        return [(t, Priority.BACKFILL) for t in dict.fromkeys(wanted)]

    summary = _run(plan, now=None, log=log)
    if invalid:
        summary = dataclasses.replace(summary, failed={**invalid, **summary.failed})
    logger.info("run=selected %s", summary.line())
    return summary


def _run(plan_of, *, now: datetime | None, log) -> RefreshSummary:
    started = timezone.now()
    port = get_market_data()
    if not isinstance(port, LiveMarketData):
        return RefreshSummary(started_at=started, finished_at=timezone.now(), note=NO_PROVIDER)
    plan: list[tuple[str, Priority]] = plan_of()
    log = log or (lambda line: None)

    # Fresh: the stored latest bar is of the newest session due by now (one query).
    grace = timedelta(minutes=settings.PAPERTRADE.staleness.grace_minutes)
    due = session_date(latest_due_close(now or started, grace))
    stored = latest_bars([t for t, _ in plan]) if plan else {}
    fresh = {t for t, _ in plan if t in stored and session_date(stored[t].as_of) >= due}
    stale = [(t, p) for t, p in plan if t not in fresh]

    # A ticker the provider said does not exist is not asked again while that is remembered.
    remembered = cache.get_many([current_key(t) for t, _ in stale]) if stale else {}
    failed = {t: "unknown ticker" for t, _ in stale if remembered.get(current_key(t)) == NOT_FOUND}
    queue = [(t, p) for t, p in stale if t not in failed]

    refreshed: list[str] = []
    deferred: list[str] = []
    note = ""
    # Highest priority first; the plan lists each priority's tickers together.
    for priority, group in itertools.groupby(queue, key=lambda item: item[1]):
        batch = [t for t, _ in group]
        if deferred:  # a batch before stopped (quota spent, interrupted): the rest waits too
            deferred += batch
            continue
        report = fetch_tickers(port=port, tickers=batch, priority=priority, log=log)
        refreshed += [r.ticker for r in report.refreshed]
        failed.update(report.failed)
        deferred += report.remaining
        note = note or report.stopped_because

    try:
        left = get_quota().status().left_day
    except MarketDataError:  # the quota's store is unreachable: say so, do not fail the run
        left = None
    return RefreshSummary(
        started_at=started,
        finished_at=timezone.now(),
        refreshed=tuple(refreshed),
        skipped_fresh=tuple(t for t, _ in plan if t in fresh),
        failed=failed,
        deferred=tuple(deferred),
        quota_left_day=left,
        note=note,
    )
