"""The upstream part: Alpha Vantage behind the shared quota, the circuit breaker and a
single-flight lock; what it fetches it stores (``PriceHistory``, then the cache).

The verbs, one per thing a caller may want from the provider:

- ``fetch(ticker, priority=...)``: one ticker's daily bars, stored, answered as a ``Fetch``
  (the latest stored point and how many bars were written), in the caller's thread. Workers
  and commands only: the Celery task behind ``request``, the refresh job, ``import_prices``.
- ``request(ticker)`` (or ``claim`` then ``enqueue_claimed``; ``settle`` when it is over):
  hand that fetch to a background worker (task ``marketdata.fetch_price``, at interactive
  priority), at most one queued or running per ticker (the key ``pending_key(ticker)``). This
  is how a web request asks: it never waits on the provider longer than
  ``market_data.request_budget_seconds``.
- ``search(query)``: ``SYMBOL_SEARCH``, US listings only, cached per query; one attempt whose
  timeout is the request budget (a person is typing).
- ``reaches(day)``: whether one call can bring ``day``'s bar at all (no call is made).

**Every HTTP attempt is a quota take.** The adapter makes exactly one request per call; a
transient failure (timeout, refused connection, 5xx) is retried here, up to ``max_retries``
times, and each retry first passes the breaker and takes its own slot from the quota, waiting
for the spacing like any call. A retry the quota or the breaker refuses is not made. Each
failed attempt counts towards the breaker as it happens.

Concurrent fetches of one ticker make one call: the holder of the ticker's lock (a cache key
taken with ``add``) calls; the others wait for its answer in the cache.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from marketdata import breaker, price_cache
from marketdata.actions import NewAction, StoredActions, store_actions
from marketdata.alpha_vantage import AlphaVantageClient, DailySeries, Quote, TransientError
from marketdata.bars import DailyBar
from marketdata.models import ActionsCheck, PriceHistory
from marketdata.port import (
    InvalidTicker,
    MarketDataError,
    MarketDataUnavailable,
    PricePoint,
    ProviderMisconfigured,
    RateLimited,
    Source,
    SymbolMatch,
    TickerNotFound,
    market_data_stored,
    normalize_ticker,
    session_date,
)
from marketdata.quota import Priority, Quota, get_quota
from marketdata.storage import upsert_daily_bars
from marketdata.trading_calendar import latest_due_close, nyse
from marketdata.upstream_status import (
    UPSTREAM_STATUS_KEY,
    note_bulk_refused,
    set_upstream_status,
    upstream_status,
)

logger = logging.getLogger(__name__)

LOCK_KEY = "md:v2:lock:{ticker}"
PENDING_KEY = "md:v2:fetching:{ticker}"  # a background fetch is queued or running
FAILED_KEY = "md:v2:fetch-failed:{ticker}"  # the last background fetch failed: why
PENDING_SECONDS = 90  # a task lost before it ran (a dead worker) frees its ticker after this
SEARCH_KEY = "md:v2:search:{query}"
LOCK_SECONDS = 30  # longer than one fetch with its retries; a crashed holder frees it
FOLLOWER_WAIT_SECONDS = 10.0  # how long a fetch waits for another's fetch of the same ticker
FOLLOWER_POLL_SECONDS = 0.05
INTERACTIVE_WAIT_SECONDS = 2.5  # how long a person's fetch waits for the per-second spacing
RETRY_SLACK_SECONDS = 1.0  # a retry waits up to the spacing plus this for its quota slot
UNAVAILABLE_NOTE_SECONDS = 60  # how long pages say "the provider is failing" after a failure
COMPACT_SESSIONS = 100  # what a free key's TIME_SERIES_DAILY (outputsize=compact) holds

T = TypeVar("T")


class BulkRefused(ProviderMisconfigured):
    """This key may not use REALTIME_BULK_QUOTES: fetch one ticker a call instead."""


@dataclass(frozen=True)
class Fetch:
    """What one fetch of one ticker brought: its latest stored point, and the bars written
    (0 and 0 when another caller's fetch, or a stored answer, served it)."""

    ticker: str
    point: PricePoint
    inserted: int = 0
    updated: int = 0


class Upstream:
    def __init__(
        self,
        *,
        client: AlphaVantageClient,
        quota: Quota | None = None,
        clock=timezone.now,
        max_retries: int = 1,
        enqueue: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self._quota = quota
        self.clock = clock
        self.max_retries = max(0, int(max_retries))
        # Hands a ticker to the background fetch (wiring.enqueue_fetch: a Celery task).
        self.enqueue = enqueue

    @property
    def quota(self) -> Quota:
        return self._quota or get_quota()

    # --- the verbs --------------------------------------------------------------------------
    def fetch(
        self,
        ticker: str,
        *,
        priority: Priority,
        wait: float | None = None,
        unless: Callable[[], PricePoint | None] | None = None,
    ) -> Fetch:
        """Fetch ``ticker``'s daily bars (one call, retries aside), store them, cache the
        latest point and answer it.

        Single-flight: while another caller fetches the same ticker, wait for its answer
        instead of calling again. ``unless`` is asked once the lock is held: a point it returns
        is the answer and no call is made (a caller that read a stale bar before the lock uses
        it to see that another fetch has just stored a fresh one). ``wait`` is how long to wait
        for the quota's spacing (by default 2.5 s for a person, none for scheduled work).

        Raises TickerNotFound (and remembers it), RateLimited when the quota allows no call,
        MarketDataUnavailable when the provider fails.
        """
        with self._single_flight(ticker) as leader:
            if not leader:
                shared = self._await_other(ticker)
                if shared is None:
                    raise MarketDataUnavailable(
                        f"The price of {ticker} could not be fetched just now."
                    )
                return Fetch(ticker=ticker, point=shared)
            if unless is not None and (answered := unless()) is not None:
                return Fetch(ticker=ticker, point=answered)
            if wait is None:
                wait = INTERACTIVE_WAIT_SECONDS if priority == Priority.INTERACTIVE else 0.0
            md = settings.PAPERTRADE.market_data
            if priority == Priority.INTERACTIVE and md.global_quote:
                return self._store_quote(self._call(self.client.quote, ticker, priority, wait))
            return self._store(self._call(self.client.daily, ticker, priority, wait))

    def fetch_bulk(self, tickers: list[str], *, priority: Priority, wait: float = 0.0) -> list:
        """The day's bars of up to BULK_LIMIT tickers in one REALTIME_BULK_QUOTES call (one
        quota take), each stored as its session's bar and cached as the current price; the
        fetched Fetches, one per ticker the answer held. Raises like ``fetch``; a key refused
        the function raises ProviderMisconfigured (the caller falls back to one call a ticker)."""
        try:
            quotes = self._call(
                lambda _: self.client.bulk_quotes(tickers), ",".join(tickers), priority, wait
            )
        except ProviderMisconfigured as exc:
            # The function alone is refused (not the key): no banner on every page, one line
            # in the log and a note on the status page; the caller falls back.
            note = upstream_status()
            if note and note.get("message") == str(exc):
                cache.delete(UPSTREAM_STATUS_KEY)
            if note_bulk_refused(str(exc)):
                logger.warning("bulk quotes refused; one call a ticker from now on: %s", exc)
            raise BulkRefused(str(exc)) from None
        fetched = []
        asked = set(tickers)
        for quote in quotes:
            if quote.ticker not in asked:
                continue  # only what was asked for is stored
            bar = _quote_bar(
                quote.day, quote.open, quote.high, quote.low, quote.close, quote.volume
            )
            fetched.append(self._write(quote.ticker, [bar], previous_close=quote.previous_close))
        return fetched

    def fetch_actions(self, ticker: str, *, priority: Priority, wait: float = 0.0) -> StoredActions:
        """Fetch ``ticker``'s splits and dividends (SPLITS, then DIVIDENDS: two calls, each a
        quota take at ``priority``) and store them; note when, so the scheduled job asks again
        only after ``[refresh] actions_every_days``. Raises like ``fetch``; what a first call
        brought is stored only when both answered."""
        splits = self._call(self.client.splits, ticker, priority, wait)
        dividends = self._call(self.client.dividends, ticker, priority, wait)
        actions = [
            NewAction(
                ticker=ticker,
                kind=a.kind,
                date=a.date,
                value=a.value,
                pay_date=a.pay_date,
                record_date=a.record_date,
                declaration_date=a.declaration_date,
            )
            for a in [*splits, *dividends]
        ]
        stored = store_actions(actions, source=Source.ALPHA_VANTAGE)
        ActionsCheck.objects.update_or_create(
            ticker=ticker, defaults={"checked_at": timezone.now()}
        )
        return stored

    def request(self, ticker: str) -> None:
        """Have ``ticker`` fetched in the background, unless a fetch of it is already queued or
        running. Raises MarketDataUnavailable when the task cannot be queued."""
        if self.claim(ticker):
            self.enqueue_claimed(ticker)

    def claim(self, ticker: str) -> bool:
        """Take the right to fetch ``ticker`` in the background (True) or learn that another
        request holds it (False). The holder either queues the fetch (``enqueue_claimed``) or
        gives the right back (``settle``)."""
        return cache.add(pending_key(ticker), 1, PENDING_SECONDS)

    def enqueue_claimed(self, ticker: str) -> None:
        """Queue the background fetch of a claimed ticker; if it cannot be queued (the broker is
        down) give the claim back and raise MarketDataUnavailable."""
        if self.enqueue is None:
            self.settle(ticker)
            raise MarketDataUnavailable("No background worker is configured to fetch prices.")
        try:
            self.enqueue(ticker)
        except Exception as exc:  # the broker is down: say so, and let the next read try again
            self.settle(ticker)
            logger.warning("could not queue a fetch of %s: %s", ticker, type(exc).__name__)
            raise MarketDataUnavailable(
                f"The price of {ticker} could not be requested just now."
            ) from None

    def settle(self, ticker: str, *, failure: str = "") -> None:
        """The background fetch of ``ticker`` is over; ``failure`` says why it brought nothing
        (remembered for a minute, so that readers with nothing stored do not ask again)."""
        if failure:
            cache.set(failed_key(ticker), failure, UNAVAILABLE_NOTE_SECONDS)
        cache.delete(pending_key(ticker))

    def search(self, query: str) -> list[SymbolMatch]:
        """``SYMBOL_SEARCH`` for ``query``, US listings only, cached per query (a person is
        typing: no wait for the quota's spacing; a refused or failed call answers [])."""
        # Hashed: 40 characters of UTF-8 in hex outgrow the 250-character key limit.
        key = SEARCH_KEY.format(query=hashlib.sha256(query.lower().encode()).hexdigest())
        cached = cache.get(key)
        if cached is not None:
            return cached
        budget = settings.PAPERTRADE.market_data.request_budget_seconds

        def search_within_budget(keywords: str) -> list[SymbolMatch]:
            return self.client.search(keywords, timeout=budget)

        try:
            matches = self._call(
                search_within_budget, query, Priority.INTERACTIVE, 0.0, max_retries=0
            )
        except MarketDataError as exc:
            logger.info("symbol search upstream skipped: %s", type(exc).__name__)
            return []
        # The app trades US stocks: other listings (TSCO.LON in pence, TL0.DEX) are left out.
        kept = []
        for match in matches:
            try:
                normalize_ticker(match.ticker)
            except InvalidTicker:
                continue
            if match.region == "United States":
                kept.append(match)
        cache.set(key, kept, settings.PAPERTRADE.cache.search_ttl_seconds)
        return kept

    def reaches(self, day: date) -> bool:
        """Whether one call can bring ``day``'s bar: a premium key's full history can; a free
        key's compact answer holds only the last 100 sessions up to the provider's newest,
        which may already be the session that closed minutes ago (so count back from that)."""
        if settings.PAPERTRADE.market_data.premium:
            return True
        import pandas as pd  # loaded with the calendar (see trading_calendar)

        cal = nyse()
        closed = session_date(latest_due_close(self.clock(), timedelta(0)))
        newest = cal.date_to_session(pd.Timestamp(closed), "previous")
        oldest = cal.sessions_window(newest, -COMPACT_SESSIONS)[0]
        return day >= oldest.date()

    # --- one call, attempt by attempt ---------------------------------------------------------
    def _call(
        self,
        method: Callable[[str], T],
        subject: str,
        priority: Priority,
        wait: float,
        *,
        max_retries: int | None = None,
    ) -> T:
        """``method(subject)`` with each attempt admitted by the breaker and the quota."""
        retries = self.max_retries if max_retries is None else max_retries
        self._admit(priority, wait)
        attempt = 0
        while True:
            try:
                answer = method(subject)
            except TransientError as exc:
                breaker.record_failure()  # counted as it happens, not after the retries
                self._note_unavailable(exc)
                if attempt >= retries:
                    raise MarketDataUnavailable(
                        f"{exc} ({attempt + 1} attempt{'s' if attempt else ''})."
                    ) from None
                spacing = settings.PAPERTRADE.quota.min_seconds_between_calls
                try:
                    self._admit(priority, max(wait, spacing + RETRY_SLACK_SECONDS))
                except MarketDataError as refused:
                    raise MarketDataUnavailable(f"{exc}; not retried: {refused}") from None
                attempt += 1
                continue
            except TickerNotFound:
                breaker.record_success()  # the provider answered
                price_cache.remember_unknown(subject)
                raise
            except RateLimited as exc:
                # The provider itself says stop: nobody calls again until the window frees up.
                until = exc.retry_at or timezone.now() + timedelta(minutes=1)
                self.quota.close_until(until, scope="upstream")
                set_upstream_status(kind="rate_limited", message=str(exc), until=until)
                raise
            except ProviderMisconfigured as exc:
                set_upstream_status(kind="misconfigured", message=str(exc), until=None)
                raise
            except MarketDataUnavailable as exc:  # an answer, but garbage: not retried
                breaker.record_failure()
                self._note_unavailable(exc)
                raise
            breaker.record_success()
            return answer

    def _admit(self, priority: Priority, wait: float) -> None:
        """Let one HTTP attempt go, or raise: the breaker first, then one take of the quota."""
        try:
            # A provider failing call after call is left alone for a while (see breaker.py).
            breaker.before_call()
        except breaker.CircuitOpen as exc:
            set_upstream_status(kind="unavailable", message=str(exc), until=exc.retry_at)
            raise
        try:
            self.quota.acquire(priority=priority, wait=wait)
        except RateLimited as exc:
            set_upstream_status(kind="quota", message=str(exc), until=exc.retry_at)
            raise

    @staticmethod
    def _note_unavailable(exc: Exception) -> None:
        until = timezone.now() + timedelta(seconds=UNAVAILABLE_NOTE_SECONDS)
        set_upstream_status(kind="unavailable", message=str(exc), until=until)

    # --- storing what came back -----------------------------------------------------------------
    def _store(self, series: DailySeries) -> Fetch:
        if not series.bars:
            raise MarketDataUnavailable(f"The provider sent no prices for {series.ticker}.")
        return self._write(series.ticker, series.bars)

    def _store_quote(self, quote: Quote) -> Fetch:
        """Store a GLOBAL_QUOTE as its trading day's bar (a later daily fetch corrects it)."""
        bar = _quote_bar(
            quote.latest_trading_day, quote.open, quote.high, quote.low, quote.price, quote.volume
        )
        return self._write(quote.ticker, [bar], previous_close=quote.previous_close)

    def _write(self, ticker: str, bars, previous_close=None) -> Fetch:
        inserted, updated = upsert_daily_bars(
            ticker=ticker, bars=bars, source=Source.ALPHA_VANTAGE, fetched_at=timezone.now()
        )
        # The latest stored bar (an imported one wins over the provider's for the same day).
        point = PriceHistory.objects.latest_points([ticker])[ticker]
        if previous_close is not None:
            point = point.replace(previous_close=previous_close)
        price_cache.remember(point)
        if inserted or updated:
            # A new session (positions may have splits or dividends to apply), or a newer
            # quote of one, or its final bar: open orders are checked against it.
            transaction.on_commit(
                lambda: market_data_stored.send(sender=Upstream, tickers=(ticker,))
            )
        return Fetch(ticker=ticker, point=point, inserted=inserted, updated=updated)

    # --- single flight --------------------------------------------------------------------------
    @contextmanager
    def _single_flight(self, ticker: str):
        """Yield True to the one caller that holds ``ticker``'s fetch lock, False to others.

        The lock is a cache key taken with ``add`` (atomic on Redis and on the database cache)
        and a token, so only its holder releases it; it expires by itself if the holder dies.
        """
        lock = LOCK_KEY.format(ticker=ticker)
        token = uuid.uuid4().hex
        leader = cache.add(lock, token, LOCK_SECONDS)
        try:
            yield leader
        finally:
            if leader and cache.get(lock) == token:
                cache.delete(lock)

    def _await_other(self, ticker: str) -> PricePoint | None:
        """Wait for the lock holder's answer in the cache; None if it ends without one."""
        lock = LOCK_KEY.format(ticker=ticker)
        key = price_cache.current_key(ticker)
        deadline = time.monotonic() + FOLLOWER_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(FOLLOWER_POLL_SECONDS)
            value = cache.get(key)
            if value == price_cache.NOT_FOUND:
                raise TickerNotFound(ticker)
            if isinstance(value, PricePoint):
                return value
            if cache.get(lock) is None:
                return None  # the holder ended without an answer to share
        return None


def pending_key(ticker: str) -> str:
    return PENDING_KEY.format(ticker=ticker)


def failed_key(ticker: str) -> str:
    return FAILED_KEY.format(ticker=ticker)


def _quote_bar(day, open_, high, low, close, volume) -> DailyBar:
    """A quote as its session's bar, its range widened to hold the last price (a quote's
    high and low can lag its last trade)."""
    return DailyBar(
        day=day, open=open_, high=max(high, close), low=min(low, close), close=close, volume=volume
    )
