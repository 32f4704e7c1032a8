"""The price port with the upstream tier: cache → ``PriceHistory`` → Alpha Vantage.

Reads that miss the cache and find no fresh stored bar go upstream through the shared quota,
with one call per ticker however many requests miss at once (a single-flight lock in the
cache), and write the answer to the database and the cache. A ticker the provider does not
know is remembered (negative cache). When the quota is spent or the provider fails, readers
get the stored price, marked stale, and every page says so (``upstream_status``).

Which reads may spend quota:
- ``get_current_price`` (a person opening a stock page, a trade being filled): yes, as
  ``Priority.INTERACTIVE``;
- ``get_current_prices`` (whole pages and their polling): never; they read cache and database;
- ``search_symbols``: only when nothing known locally matches (see ``marketdata.symbols``);
- ``refresh_ticker`` (commands, scheduled refresh): with the priority its caller gives.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from marketdata.alpha_vantage import AlphaVantageClient, DailyBar, DailySeries, Quote
from marketdata.models import PriceHistory
from marketdata.port import (
    MarketDataError,
    MarketDataUnavailable,
    PricePoint,
    ProviderMisconfigured,
    RateLimited,
    Source,
    SymbolMatch,
    TickerNotFound,
)
from marketdata.quota import Priority, Quota, get_quota
from marketdata.services import (
    NOT_FOUND,
    StoredMarketData,
    current_key,
    latest_bars,
    set_upstream_status,
)
from marketdata.storage import upsert_daily_bars
from marketdata.symbols import search_local
from marketdata.tickers import normalize_ticker
from marketdata.trading_calendar import latest_due_close, nyse, session_date

logger = logging.getLogger(__name__)

LOCK_KEY = "md:v1:lock:{ticker}"
SEARCH_KEY = "md:v1:search:{query}"
LOCK_SECONDS = 30  # longer than one upstream call with its retries; a crashed holder frees it
FOLLOWER_WAIT_SECONDS = 10.0  # how long a request waits for another's fetch of the same ticker
FOLLOWER_POLL_SECONDS = 0.05
INTERACTIVE_WAIT_SECONDS = 2.5  # how long a person's request waits for the per-second spacing
RETRY_STORED_SECONDS = 60  # after a failed fetch, serve the stored bar this long before retrying
TOPUP_KEY = "md:v1:topped-up:{ticker}"  # a history top-up was tried lately: do not knock again
COMPACT_SESSIONS = 100  # what a free key's TIME_SERIES_DAILY (outputsize=compact) holds


@dataclass(frozen=True)
class RefreshResult:
    ticker: str
    point: PricePoint
    inserted: int
    updated: int


class LiveMarketData(StoredMarketData):
    def __init__(self, *, client: AlphaVantageClient, quota: Quota | None = None, clock=None):
        super().__init__(clock=clock or timezone.now)
        self.client = client
        self._quota = quota

    @property
    def quota(self) -> Quota:
        return self._quota or get_quota()

    # --- current price, through every tier -----------------------------------------------
    def get_current_price(self, ticker: str) -> PricePoint:
        """Cache → database → provider. On a miss, one request per ticker (the holder of the
        single-flight lock) reads the database and, if its bar is missing or stale, calls the
        provider; concurrent requests wait for its answer in the cache without touching the
        database or the provider, and fall back to the stored bar if it has none to share."""
        due = self._due_session()
        cached = cache.get(current_key(ticker))
        if cached == NOT_FOUND:
            raise TickerNotFound(ticker)
        if isinstance(cached, PricePoint):
            return self._judged(cached, due)
        with self._single_flight(ticker) as leader:
            if not leader:
                shared = self._await_other(ticker)
                if shared is not None:
                    return self._judged(shared, due)
                stored = latest_bars([ticker]).get(ticker)
                if stored is None:
                    raise MarketDataUnavailable(
                        f"The price of {ticker} could not be fetched just now."
                    )
                return self._judged(stored, due)
            stored = latest_bars([ticker]).get(ticker)
            if stored is not None and not self._judged(stored, due).is_stale:
                ttl = settings.PAPERTRADE.cache.price_ttl_seconds
                cache.set(current_key(ticker), stored, ttl)
                return self._judged(stored, due)
            try:
                fetched = self._fetch(ticker, Priority.INTERACTIVE, None)
            except TickerNotFound:
                raise
            except MarketDataUnavailable:
                if stored is None:
                    raise
                # Serve what we have, marked stale, and do not knock again for a minute.
                cache.set(current_key(ticker), stored, RETRY_STORED_SECONDS)
                return self._judged(stored, due)
            return self._judged(fetched.point, due)

    # --- the upstream tier ----------------------------------------------------------------
    def refresh_ticker(
        self, ticker: str, *, priority: Priority, wait: float | None = None
    ) -> PricePoint:
        """Fetch ``ticker``'s daily bars upstream (one call), store them and cache the latest.

        Single-flight: if another process is fetching the same ticker, wait for its answer
        instead of calling again. Raises TickerNotFound (and remembers it), RateLimited when
        the quota allows no call, MarketDataUnavailable when the provider fails.
        """
        return self.refresh(ticker, priority=priority, wait=wait).point

    def refresh(
        self, ticker: str, *, priority: Priority, wait: float | None = None
    ) -> RefreshResult:
        """Like ``refresh_ticker`` but says how many bars were stored (for commands and tasks)."""
        with self._single_flight(ticker) as leader:
            if leader:
                return self._fetch(ticker, priority, wait)
            shared = self._await_other(ticker)
            if shared is None:
                raise MarketDataUnavailable(f"The price of {ticker} could not be fetched just now.")
            return RefreshResult(ticker=ticker, point=shared, inserted=0, updated=0)

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
        deadline = time.monotonic() + FOLLOWER_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(FOLLOWER_POLL_SECONDS)
            value = cache.get(current_key(ticker))
            if value == NOT_FOUND:
                raise TickerNotFound(ticker)
            if isinstance(value, PricePoint):
                return value
            if cache.get(lock) is None:
                return None  # the holder ended without an answer to share
        return None

    def _fetch(self, ticker: str, priority: Priority, wait: float | None) -> RefreshResult:
        from marketdata import breaker

        if wait is None:
            wait = INTERACTIVE_WAIT_SECONDS if priority == Priority.INTERACTIVE else 0.0
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
        quote = None
        try:
            if priority == Priority.INTERACTIVE and settings.PAPERTRADE.market_data.global_quote:
                quote = self.client.quote(ticker)
            else:
                series = self.client.daily(ticker)
        except TickerNotFound:
            breaker.record_success()  # the provider answered
            cache.set(
                current_key(ticker), NOT_FOUND, settings.PAPERTRADE.cache.negative_ttl_seconds
            )
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
        except MarketDataUnavailable as exc:
            breaker.record_failure()
            set_upstream_status(
                kind="unavailable",
                message=str(exc),
                until=timezone.now() + timedelta(seconds=RETRY_STORED_SECONDS),
            )
            raise
        breaker.record_success()
        if quote is not None:
            return self._store_quote(quote)
        return self._store(series)

    def _store(self, series: DailySeries) -> RefreshResult:
        if not series.bars:
            raise MarketDataUnavailable(f"The provider sent no prices for {series.ticker}.")
        inserted, updated = upsert_daily_bars(
            ticker=series.ticker,
            bars=series.bars,
            source=Source.ALPHA_VANTAGE,
            fetched_at=timezone.now(),
        )
        # The latest stored bar (an imported one wins over the provider's for the same day).
        point = latest_bars([series.ticker])[series.ticker]
        cache.set(current_key(series.ticker), point, settings.PAPERTRADE.cache.price_ttl_seconds)
        return RefreshResult(ticker=series.ticker, point=point, inserted=inserted, updated=updated)

    def _store_quote(self, quote: Quote) -> RefreshResult:
        """Store a GLOBAL_QUOTE as its trading day's bar (a later daily fetch corrects it)."""
        bar = DailyBar(
            day=quote.latest_trading_day,
            open=quote.open,
            high=max(quote.high, quote.price),
            low=min(quote.low, quote.price),
            close=quote.price,
            volume=quote.volume,
        )
        inserted, updated = upsert_daily_bars(
            ticker=quote.ticker, bars=[bar], source=Source.ALPHA_VANTAGE, fetched_at=timezone.now()
        )
        point = dataclasses.replace(
            latest_bars([quote.ticker])[quote.ticker], previous_close=quote.previous_close
        )
        cache.set(current_key(quote.ticker), point, settings.PAPERTRADE.cache.price_ttl_seconds)
        return RefreshResult(ticker=quote.ticker, point=point, inserted=inserted, updated=updated)

    # --- history: stored bars, topped up when the newest due session is missing ----------
    def get_price_at(self, ticker: str, when: datetime) -> PricePoint:
        """The last daily bar at or before ``when``, never carried past the provider's last bar.

        When a newer session's bar is due by ``when`` (NYSE calendar plus grace) than the one
        stored, and nothing later is stored either (the history ends there; a gap inside it is
        served, marked stale), one upstream call at interactive priority tops the history up,
        if one call can bring that session at all (a free key gets the last 100 sessions). If
        the bar is still missing, MarketDataUnavailable names the latest stored bar's date. A
        ticker with nothing stored is looked up upstream the same way.
        """
        point = self._stored_price_at(ticker, when)
        if point is not None and (not point.is_stale or self._stored_after(ticker, point)):
            return point
        unknown = self._said_unknown(ticker)
        if point is None and unknown:
            raise TickerNotFound(ticker)
        due = self._due_session(at=when)
        why = ""
        if not unknown and self._provider_reaches(due):
            try:
                self._top_up(ticker)
            except TickerNotFound:
                if point is None:
                    raise
            except MarketDataUnavailable as exc:
                why = f" ({exc})"
            point = self._stored_price_at(ticker, when)
        if point is None:
            raise MarketDataUnavailable(
                f"No prices for {ticker} are stored, and the provider could not be asked{why}."
            )
        if point.is_stale:
            raise MarketDataUnavailable(
                f"No {ticker} close for {due:%Y-%m-%d} is stored: the latest stored bar is "
                f"{point.session_date:%Y-%m-%d}{why}."
            )
        return point

    def get_price_history(self, ticker: str, start: date, end: date) -> list[PricePoint]:
        """Stored daily bars from ``start`` to ``end``, oldest first (one index range scan).

        Only when the latest NYSE session due within [start, end] is missing does one upstream
        call (interactive priority) top the history up, and only if one call can bring that
        session (a free key's compact answer holds the last 100 sessions; ``full`` needs
        ``market_data.premium``). When the top-up fails (quota spent, provider down) the stored
        bars are the answer.
        """
        points = self._stored_history(ticker, start, end)
        if points is not None:
            due = self._latest_due_session_within(start, end)
            if due is None or (points and points[-1].session_date >= due):
                return points  # complete up to the newest session there is to have
            if not self._provider_reaches(due) or self._said_unknown(ticker):
                return points
        elif self._said_unknown(ticker):
            raise TickerNotFound(ticker)
        try:
            self._top_up(ticker)
        except MarketDataError:  # quota spent, provider down; or it no longer knows the ticker
            if points is None:
                raise
            return points
        topped_up = self._stored_history(ticker, start, end)
        if topped_up is None:
            raise MarketDataUnavailable(f"The prices of {ticker} could not be fetched just now.")
        return topped_up

    def _top_up(self, ticker: str) -> None:
        """One upstream call for ``ticker``'s newest bars: single-flight, through the quota at
        interactive priority (a person asked). After a try, whatever its outcome, reads do not
        knock again for a while: a provider that is late with a bar, or failing, is not asked
        on every read."""
        key = TOPUP_KEY.format(ticker=ticker)
        if cache.get(key) is not None:
            return  # tried lately: what is stored is the answer for now
        try:
            self.refresh(ticker, priority=Priority.INTERACTIVE)
        except TickerNotFound:
            raise
        except MarketDataError:
            cache.set(key, "failed", RETRY_STORED_SECONDS)
            raise
        cache.set(key, "done", settings.PAPERTRADE.cache.price_ttl_seconds)

    def _said_unknown(self, ticker: str) -> bool:
        """The provider said lately that it knows no such ticker (the negative cache)."""
        return cache.get(current_key(ticker)) == NOT_FOUND

    def _stored_after(self, ticker: str, point: PricePoint) -> bool:
        return PriceHistory.objects.daily(ticker).filter(timestamp__gt=point.as_of).exists()

    def _provider_reaches(self, day: date) -> bool:
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

    def _latest_due_session_within(self, start: date, end: date) -> date | None:
        """The newest NYSE session from ``start`` to ``end`` whose bar is due by now."""
        import pandas as pd

        cal = nyse()
        newest = pd.Timestamp(min(end, self._due_session()))
        if newest < cal.first_session:
            return None
        session = cal.date_to_session(min(newest, cal.last_session), "previous").date()
        return session if session >= start else None

    # --- search ---------------------------------------------------------------------------
    def search_symbols(self, query: str) -> list[SymbolMatch]:
        # Typing costs no quota when something known matches; the provider is asked (once per
        # query, cached) only when nothing local does.
        local = search_local(query)
        if local or len(query.strip()) < 2:
            return local
        return _merge(local, self._search_upstream(query.strip()))

    def _search_upstream(self, query: str) -> list[SymbolMatch]:
        # Hashed: 40 characters of UTF-8 in hex outgrow the 250-character key limit.
        key = SEARCH_KEY.format(query=hashlib.sha256(query.lower().encode()).hexdigest())
        cached = cache.get(key)
        if cached is not None:
            return cached
        try:
            self.quota.acquire(priority=Priority.INTERACTIVE, wait=0)
            matches = self.client.search(query)
        except MarketDataError as exc:
            # Quota spent or provider failing: the local matches are the answer for now.
            logger.info("symbol search upstream skipped: %s", type(exc).__name__)
            return []
        # The app trades US stocks: other listings (TSCO.LON in pence, TL0.DEX) are left out.
        matches = [m for m in matches if m.region == "United States"]
        cache.set(key, matches, settings.PAPERTRADE.cache.search_ttl_seconds)
        return matches


def _merge(first: list[SymbolMatch], second: list[SymbolMatch], limit: int = 10):
    seen = {m.ticker for m in first}
    merged = list(first)
    for match in second:
        try:
            normalize_ticker(match.ticker)
        except ValueError:
            continue
        if match.ticker not in seen:
            seen.add(match.ticker)
            merged.append(match)
    return merged[:limit]


@dataclass
class FetchReport:
    """What a batch fetch did: for commands and the scheduled refresh."""

    refreshed: list[RefreshResult]
    failed: dict[str, str]
    remaining: list[str]
    stopped_because: str = ""

    def summary(self) -> str:
        inserted = sum(r.inserted for r in self.refreshed)
        updated = sum(r.updated for r in self.refreshed)
        text = (
            f"Fetched {len(self.refreshed)} tickers: {inserted:,} bars inserted, {updated:,} "
            f"updated; {len(self.failed)} failed; {len(self.remaining)} not tried."
        )
        return text + (f" Stopped: {self.stopped_because}." if self.stopped_because else "")


SPACING_WAIT_SLACK = 1.0


def fetch_tickers(
    *,
    port: LiveMarketData,
    tickers: list[str],
    priority: Priority,
    progress=None,
    log=lambda line: None,
) -> FetchReport:
    """Fetch ``tickers`` one by one through the quota, in the order given.

    Waits for the per-second spacing and for a per-minute window; continues past a failing
    ticker; stops (leaving the rest in ``remaining``) when the day's share of the quota is
    spent or the provider closes the window, or on KeyboardInterrupt/SIGTERM.
    """
    spacing = settings.PAPERTRADE.quota.min_seconds_between_calls
    report = FetchReport(refreshed=[], failed={}, remaining=[])
    queue = list(tickers)
    while queue:
        ticker = queue[0]
        try:
            result = port.refresh(ticker, priority=priority, wait=spacing + SPACING_WAIT_SLACK)
        except KeyboardInterrupt:
            report.stopped_because = "interrupted"
            break
        except RateLimited as exc:
            if exc.scope in ("second", "minute") and exc.retry_at is not None:
                pause = (exc.retry_at - timezone.now()).total_seconds()
                if pause <= 65:
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
            report.refreshed.append(result)
            log(
                f"{ticker}: {result.inserted} bars inserted, {result.updated} updated; latest "
                f"{result.point.price} as of {timezone.localtime(result.point.as_of):%Y-%m-%d}"
            )
        queue.pop(0)
        if progress is not None:
            progress.update(1)
    report.remaining = queue
    return report
