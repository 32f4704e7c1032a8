"""The scheduled price refresh: run 1 of the refresh plan (``marketdata.plan``), within the
quota's share.

``refresh_prices`` is the one job behind the Celery beat task, ``manage.py refresh_prices`` and
the status page's "last refresh". It

- takes the refresh plan's first run: the tickers that need a fresh bar, held first, then the
  configured watchlist, then every other stored ticker, the oldest bar first within each, as
  many as one run's share of the quota allows (held tickers come from
  ``settings.PAPERTRADE_HELD_TICKERS``, a dotted path: marketdata imports nothing from
  portfolios); the rest wait for later runs and are reported as *deferred*;
- holds a run lock per session (``RUN_LOCK_KEY``, holding the run's id): a second scheduler
  started by mistake finds the run under way and fetches nothing, while the same task
  redelivered after its worker died takes its own lock back;
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
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from marketdata import price_cache
from marketdata.alpha_vantage import BULK_LIMIT
from marketdata.models import ActionsCheck, PriceHistory
from marketdata.plan import PeopleTickers, people_tickers, refresh_plan
from marketdata.port import (
    InvalidTicker,
    MarketDataError,
    RateLimited,
    TickerNotFound,
    normalize_ticker,
    session_date,
)
from marketdata.quota import Priority, get_quota
from marketdata.trading_calendar import latest_due_close
from marketdata.upstream import BulkRefused, Fetch, Upstream
from marketdata.upstream_status import bulk_applies
from marketdata.wiring import get_upstream

logger = logging.getLogger(__name__)

LAST_REFRESH_KEY = "md:v1:last-refresh"  # the last scheduled RefreshSummary, for the status page
RUN_LOCK_KEY = "md:v1:refresh-run:{session}"  # one scheduled run per session at a time
RUN_LOCK_SECONDS = 16 * 60  # past the task's hard time limit: a dead run's lock expires
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
    actions_checked: tuple[str, ...] = ()  # tickers whose splits and dividends were fetched

    @property
    def ok(self) -> bool:
        return not self.failed

    def line(self) -> str:
        left = "n/a" if self.quota_left_day is None else self.quota_left_day
        text = (
            f"refreshed={len(self.refreshed)} skipped_fresh={len(self.skipped_fresh)} "
            f"failed={len(self.failed)} deferred={len(self.deferred)} quota_left_day={left}"
        )
        if self.actions_checked:
            text += f" actions_checked={len(self.actions_checked)}"
        return text + (f' note="{self.note}"' if self.note else "")


def tracked_tickers(people: PeopleTickers | None = None) -> list[tuple[str, Priority]]:
    """Held tickers and those of open orders (``Priority.HELD``), then people's watchlists and
    the configured one's others (``WATCHLIST``), once each."""
    people = people or people_tickers()
    held = list(dict.fromkeys([*people.held, *people.orders]))
    watch = [
        t
        for t in dict.fromkeys([*people.watched, *settings.PAPERTRADE.refresh.watchlist])
        if t not in held
    ]
    return [(t, Priority.HELD) for t in held] + [(t, Priority.WATCHLIST) for t in watch]


def refresh_prices(
    *,
    now: datetime | None = None,
    log: Callable[[str], None] | None = None,
    run_id: str | None = None,
) -> RefreshSummary:
    """Refresh every stale held and watchlist ticker within the quota's scheduled share.

    ``now`` is the moment freshness is judged at (default: now); ``log`` receives one line per
    fetched ticker (the command prints them). Stores the summary for the status page.
    """
    started = timezone.now()
    people = people_tickers()
    plan = refresh_plan(now=now, people=people)
    lock = RUN_LOCK_KEY.format(session=plan.due)
    run_id = run_id or uuid.uuid4().hex
    # The lock holds the run's id: the same run redelivered (its worker died) takes it back;
    # any other run of the session (a second scheduler) finds it taken.
    if not cache.add(lock, run_id, timeout=RUN_LOCK_SECONDS) and cache.get(lock) != run_id:
        # Two beat processes (a mistake) or a re-delivered task: one run per session at a time.
        summary = RefreshSummary(
            started_at=started,
            finished_at=timezone.now(),
            note=f"another refresh of the {plan.due:%Y-%m-%d} session is under way",
        )
        logger.info("run=scheduled %s", summary.line())
        return summary
    try:
        tracked = tracked_tickers(people)
        first = [(t.ticker, t.priority) for t in plan.run(1)]
        planned = {t.ticker for t in plan.tickers}
        later = tuple(t.ticker for t in plan.tickers if t.run > 1)
        # Run 1 of the plan, in its order; the tracked tickers it leaves out are fresh.
        summary = _run(
            lambda: first + [(t, p) for t, p in tracked if t not in planned],
            now=now,
            log=log,
            actions=tracked,
        )
        if later:
            waiting = (
                f"the day's scheduled share of the quota is spent: {len(later)} tickers wait "
                "for later runs (refresh_prices --plan)"
            )
            summary = dataclasses.replace(
                summary, deferred=summary.deferred + later, note=summary.note or waiting
            )
    finally:
        cache.delete(lock)
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


def _run(plan_of, *, now: datetime | None, log, actions=None) -> RefreshSummary:
    started = timezone.now()
    upstream = get_upstream()
    if upstream is None:
        return RefreshSummary(started_at=started, finished_at=timezone.now(), note=NO_PROVIDER)
    plan: list[tuple[str, Priority]] = plan_of()
    log = log or (lambda line: None)

    # Fresh: the stored latest bar is of the newest session due by now (one query).
    grace = timedelta(minutes=settings.PAPERTRADE.staleness.grace_minutes)
    due = session_date(latest_due_close(now or started, grace))
    stored = PriceHistory.objects.latest_points([t for t, _ in plan])
    fresh = {t for t, _ in plan if t in stored and session_date(stored[t].as_of) >= due}
    stale = [(t, p) for t, p in plan if t not in fresh]

    # A ticker the provider said does not exist is not asked again while that is remembered.
    remembered = cache.get_many([price_cache.current_key(t) for t, _ in stale]) if stale else {}
    failed = {
        t: "unknown ticker"
        for t, _ in stale
        if remembered.get(price_cache.current_key(t)) == price_cache.NOT_FOUND
    }
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
        if bulk_applies():
            stored_ones = [t for t in batch if t in stored]  # history stays one call a ticker
            report = fetch_bulk_tickers(
                upstream=upstream, tickers=stored_ones, priority=priority, log=log
            )
            rest = [t for t in batch if t not in stored] + report.remaining
            if rest and not report.stopped_because:
                more = fetch_tickers(upstream=upstream, tickers=rest, priority=priority, log=log)
                report = FetchReport(
                    fetched=report.fetched + more.fetched,
                    failed={**report.failed, **more.failed},
                    remaining=more.remaining,
                    stopped_because=more.stopped_because,
                )
        else:
            report = fetch_tickers(upstream=upstream, tickers=batch, priority=priority, log=log)
        refreshed += [r.ticker for r in report.fetched]
        failed.update(report.failed)
        deferred += report.remaining
        note = note or report.stopped_because

    checked: list[str] = []
    if actions and not deferred:  # prices first: splits and dividends take what is left
        due = actions_due([(t, p) for t, p in actions if t not in failed])
        report = fetch_actions(upstream=upstream, plan=due, log=log)
        checked = report.fetched
        failed.update(report.failed)
        note = note or report.stopped_because

    try:
        left = get_quota().status().left_day
    except MarketDataError:  # the quota's store is unreachable: say so, do not fail the run
        left = None
    return RefreshSummary(
        actions_checked=tuple(checked),
        started_at=started,
        finished_at=timezone.now(),
        refreshed=tuple(refreshed),
        skipped_fresh=tuple(t for t, _ in plan if t in fresh),
        failed=failed,
        deferred=tuple(deferred),
        quota_left_day=left,
        note=note,
    )


# --- the batch fetch: one ticker after another through the quota ------------------------------
@dataclass
class FetchReport:
    """What a batch fetch did: for commands and the scheduled refresh."""

    fetched: list[Fetch]
    failed: dict[str, str]
    remaining: list[str]
    stopped_because: str = ""

    def summary(self) -> str:
        inserted = sum(r.inserted for r in self.fetched)
        updated = sum(r.updated for r in self.fetched)
        text = (
            f"Fetched {len(self.fetched)} tickers: {inserted:,} bars inserted, {updated:,} "
            f"updated; {len(self.failed)} failed; {len(self.remaining)} not tried."
        )
        return text + (f" Stopped: {self.stopped_because}." if self.stopped_because else "")


SPACING_WAIT_SLACK = 1.0
LONGEST_WINDOW_WAIT = 65  # seconds a batch sleeps for a second/minute window to free up


def fetch_tickers(
    *,
    upstream: Upstream,
    tickers: list[str],
    priority: Priority,
    progress=None,
    log: Callable[[str], None] = lambda line: None,
) -> FetchReport:
    """Fetch ``tickers`` one by one through the quota, in the order given.

    Waits for the per-second spacing and for a per-minute window; continues past a failing
    ticker; stops (leaving the rest in ``remaining``) when the day's share of the quota is
    spent or the provider closes the window, or on KeyboardInterrupt (SIGTERM, in commands).
    """
    spacing = settings.PAPERTRADE.quota.min_seconds_between_calls
    report = FetchReport(fetched=[], failed={}, remaining=[])
    queue = list(tickers)
    while queue:
        ticker = queue[0]
        try:
            result = upstream.fetch(ticker, priority=priority, wait=spacing + SPACING_WAIT_SLACK)
        except KeyboardInterrupt:
            report.stopped_because = "interrupted"
            break
        except RateLimited as exc:
            if exc.scope in ("second", "minute") and exc.retry_at is not None:
                pause = (exc.retry_at - timezone.now()).total_seconds()
                if pause <= LONGEST_WINDOW_WAIT:
                    log(f"{ticker}: waiting {max(pause, 0):.0f} s for the quota window")
                    try:
                        time.sleep(max(pause, 0.05))
                    except KeyboardInterrupt:
                        report.stopped_because = "interrupted"
                        break
                    continue
            until = f" until {exc.retry_at:%Y-%m-%d %H:%M} UTC" if exc.retry_at else ""
            report.stopped_because = f"the quota is spent{until}"
            break
        except TickerNotFound:
            report.failed[ticker] = "unknown ticker"
            log(f"{ticker}: the provider does not know this ticker")
        except MarketDataError as exc:
            report.failed[ticker] = str(exc)
            log(f"{ticker}: failed: {exc}")
        else:
            report.fetched.append(result)
            log(
                f"{ticker}: {result.inserted} bars inserted, {result.updated} updated; latest "
                f"{result.point.price} as of {timezone.localtime(result.point.as_of):%Y-%m-%d}"
            )
        queue.pop(0)
        if progress is not None:
            progress.update(1)
    report.remaining = queue
    return report


# --- splits and dividends: at most every actions_every_days per ticker ---------------------------
def actions_due(plan: list[tuple[str, Priority]]) -> list[tuple[str, Priority]]:
    """The tickers of ``plan`` whose splits and dividends were not fetched within
    ``[refresh] actions_every_days`` (one query), in the plan's order."""
    days = settings.PAPERTRADE.refresh.actions_every_days
    if not days or not plan:
        return []
    since = timezone.now() - timedelta(days=days)
    recent = set(
        ActionsCheck.objects.filter(
            ticker__in=[t for t, _ in plan], checked_at__gte=since
        ).values_list("ticker", flat=True)
    )
    return [(t, p) for t, p in plan if t not in recent]


@dataclass
class ActionsReport:
    fetched: list[str]
    failed: dict[str, str]
    remaining: list[str]
    stopped_because: str = ""


def fetch_actions(
    *, upstream: Upstream, plan: list[tuple[str, Priority]], log: Callable[[str], None]
) -> ActionsReport:
    """Fetch each planned ticker's splits and dividends through the quota (two calls each, at
    its priority); stop when the scheduled share is spent, like ``fetch_tickers``."""
    spacing = settings.PAPERTRADE.quota.min_seconds_between_calls
    report = ActionsReport(fetched=[], failed={}, remaining=[])
    queue = list(plan)
    while queue:
        ticker, priority = queue[0]
        # Two calls a ticker, kept only when both answer: start one only with room for both,
        # so the minute or the day's share closing between them does not waste the first.
        room = _room_for_two()
        if room == "day":
            report.stopped_because = "the quota is spent"
            break
        if room == "minute":
            time.sleep(max(0.05, 60.5 - time.time() % 60))
            continue
        try:
            stored = upstream.fetch_actions(
                ticker, priority=priority, wait=spacing + SPACING_WAIT_SLACK
            )
        except RateLimited as exc:
            if exc.scope in ("second", "minute") and exc.retry_at is not None:
                pause = (exc.retry_at - timezone.now()).total_seconds()
                if pause <= LONGEST_WINDOW_WAIT:
                    time.sleep(max(pause, 0.05))
                    continue
            until = f" until {exc.retry_at:%Y-%m-%d %H:%M} UTC" if exc.retry_at else ""
            report.stopped_because = f"the quota is spent{until}"
            break
        except MarketDataError as exc:
            report.failed[ticker] = f"splits and dividends: {exc}"
            log(f"{ticker}: splits and dividends failed: {exc}")
        else:
            report.fetched.append(ticker)
            log(f"{ticker}: splits and dividends: {stored.inserted} new, {stored.updated} changed")
        queue.pop(0)
    report.remaining = [t for t, _ in queue]
    return report


def _room_for_two() -> str:
    """ "" when the quota has room for two scheduled calls now, else the window that lacks it
    ("minute" or "day"); "" too when the quota cannot be read (the calls then ask it)."""
    try:
        status = get_quota().status()
    except MarketDataError:
        return ""
    if status.left_day_scheduled < 2:
        return "day"
    if status.left_minute < 2:
        return "minute"
    return ""


# --- bulk quotes (a premium key): up to 100 tickers a call -------------------------------------
def fetch_bulk_tickers(
    *, upstream: Upstream, tickers: list[str], priority: Priority, log: Callable[[str], None]
) -> FetchReport:
    """The day's bars of ``tickers``, BULK_LIMIT a call (one quota take each). A ticker the
    answers leave out is retried one call a ticker (``remaining``); a key refused the function
    leaves every ticker not yet fetched in ``remaining`` for the caller's one-a-ticker calls."""
    spacing = settings.PAPERTRADE.quota.min_seconds_between_calls
    report = FetchReport(fetched=[], failed={}, remaining=[])
    chunks = [tickers[i : i + BULK_LIMIT] for i in range(0, len(tickers), BULK_LIMIT)]
    while chunks:
        chunk = chunks[0]
        try:
            fetched = upstream.fetch_bulk(
                chunk, priority=priority, wait=spacing + SPACING_WAIT_SLACK
            )
        except BulkRefused:
            report.remaining += [t for c in chunks for t in c]
            log("bulk quotes refused for this key: one call a ticker instead")
            return report
        except RateLimited as exc:
            until = f" until {exc.retry_at:%Y-%m-%d %H:%M} UTC" if exc.retry_at else ""
            report.stopped_because = f"the quota is spent{until}"
            report.remaining += [t for c in chunks for t in c]
            return report
        except MarketDataError as exc:
            for ticker in chunk:
                report.failed[ticker] = str(exc)
            log(f"bulk quotes of {len(chunk)} tickers failed: {exc}")
        else:
            report.fetched += fetched
            got = {f.ticker for f in fetched}
            report.remaining += [t for t in chunk if t not in got]
            log(f"bulk quotes: {len(got)} of {len(chunk)} tickers")
        chunks.pop(0)
    return report
