"""The price port's one implementation: Django cache (hot) → ``PriceHistory`` (warm) → an
optional upstream part (cold, ``marketdata.upstream``).

A database hit warms the cache. Cached entries hold the bar as stored; staleness is judged on
every read against the NYSE calendar, never stored. Cache errors degrade to misses (the Redis
cache is configured with ``IGNORE_EXCEPTIONS``), so the database tier still answers.

Without an upstream part (no provider key: the offline demo) the stored tiers are all there
is. With one, these reads may spend quota, at ``Priority.INTERACTIVE``:

- ``get_current_price`` (a person opening a stock page, a trade being filled), when the stored
  bar is missing or stale;
- ``get_price_history``, only when the newest session due in the range is missing and one call
  can bring it;
- ``search_symbols``, only when nothing known locally matches (see ``marketdata.symbols``).

``get_current_prices`` (whole pages and their polling) and ``get_price_at`` never do.

**No web request waits on the provider.** The first two hand their fetch to a background
worker (``Upstream.request``: a Celery task at interactive priority, one per ticker however
many ask) and wait for its answer in the cache at most ``market_data.request_budget_seconds``
(or the ``wait`` given); past it they answer what is stored, marked ``pending``, or raise
``PriceFetching``, and the page picks the answer up by polling. The worker's half is
``fetch_requested``. Symbol search makes one attempt with the budget as its timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max, Min
from django.utils import timezone

from marketdata import cache_stats, price_cache
from marketdata.adjust import split_adjusted
from marketdata.budget import wait_started
from marketdata.models import CorporateAction, Interval, PriceHistory
from marketdata.port import (
    CorporateActionPoint,
    MarketDataError,
    MarketDataUnavailable,
    NoStoredPrices,
    PriceFetching,
    PricePoint,
    SymbolMatch,
    TickerNotFound,
    day_start,
    session_date,
)
from marketdata.quota import Priority
from marketdata.symbols import bundled_symbols, search_local
from marketdata.trading_calendar import latest_due_close, nyse
from marketdata.upstream import Upstream, failed_key, pending_key

RETRY_STORED_SECONDS = 60  # after a failed fetch, serve the stored bar this long before retrying
TOPUP_KEY = "md:v2:topped-up:{ticker}"  # a history top-up was tried lately: do not knock again
SEARCH_LIMIT = 10
AWAIT_POLL_SECONDS = 0.05  # how often a waiting request looks for the background answer


class TieredMarketData:
    """The port over the cache, the stored history and, if given, an upstream part."""

    def __init__(
        self, *, upstream: Upstream | None = None, clock=timezone.now, live: bool | None = None
    ) -> None:
        self.upstream = upstream
        self.clock = clock
        # Whether a newer close could come, so that a missing one makes a price stale: with an
        # upstream, yes; offline the stored closes are the demo (one banner says what they are).
        self.live = upstream is not None if live is None else live

    # --- staleness ------------------------------------------------------------------------
    def due_session(self, at: datetime | None = None) -> date:
        """The session date of the newest bar that should be published by now (or by ``at``,
        when that is earlier: history is judged against its own moment, not the present)."""
        grace = timedelta(minutes=settings.PAPERTRADE.staleness.grace_minutes)
        now = self.clock()
        return session_date(latest_due_close(min(at, now) if at else now, grace))

    def judged(self, point: PricePoint, due_session: date) -> PricePoint:
        """``point`` marked stale when a newer close should exist by now (and, ``live``, could
        come); offline the stored closes are what the demo is, not prices out of date."""
        stale = self.live and session_date(point.as_of) < due_session
        return point.replace(is_stale=stale) if stale != point.is_stale else point

    # --- current prices -------------------------------------------------------------------
    def get_current_price(self, ticker: str, *, wait: float | None = None) -> PricePoint:
        """Cache → database → a background fetch (when the stored bar is missing or stale).

        On a miss, one request per ticker (the one that claims its fetch) reads the database
        and, if the bar is missing or stale, queues the fetch; concurrent requests wait for the
        answer in the cache without touching the database. Each waits at most ``wait`` seconds
        (default: the request budget) from its start (a web request's: from when the request
        began). Past it: the stored bar, marked stale and ``pending``; PriceFetching when
        nothing is stored. A failed fetch leaves the stored bar in the cache, marked stale, for
        a minute before anyone asks again; with nothing stored, its failure is the answer for
        that minute.
        """
        if self.upstream is None:  # offline: the stored tiers are all there is
            return self._raise_or_return(self.get_current_prices([ticker])[ticker])
        started = wait_started()  # a web request's budget runs from its start
        due = self.due_session()
        key, failed = price_cache.current_key(ticker), failed_key(ticker)
        values = cache.get_many([key, pending_key(ticker), failed])  # one round-trip
        cached = values.get(key)
        if cached == price_cache.NOT_FOUND:
            raise TickerNotFound(ticker)
        if isinstance(cached, PricePoint):
            return self.judged(cached, due)
        if wait is None:
            wait = settings.PAPERTRADE.market_data.request_budget_seconds
        deadline = started + wait

        if pending_key(ticker) in values or not self.upstream.claim(ticker):
            # Another request is reading the database or fetching: wait for its answer.
            answer, under_way = self._await_fetch(ticker, None, deadline=deadline)
            if answer is None:
                answer = PriceHistory.objects.latest_points([ticker]).get(ticker)
                if answer is None:
                    raise PriceFetching(ticker)
            return self.judged(answer, due).replace(pending=under_way)

        # This request holds the claim: the database first, then the provider if need be.
        stored, fresh = self._stored_and_fresh(ticker, due)
        if fresh:
            self.upstream.settle(ticker)
            return self.judged(stored, due)
        if stored is None and values.get(failed):
            self.upstream.settle(ticker)
            raise MarketDataUnavailable(values[failed])
        try:
            self.upstream.enqueue_claimed(ticker)
        except MarketDataUnavailable:
            if stored is None:
                raise
            return self.judged(stored, due)
        answer, under_way = self._await_fetch(ticker, stored, deadline=deadline)
        if answer is None:
            raise PriceFetching(ticker)
        return self.judged(answer, due).replace(pending=under_way)

    def _await_fetch(
        self, ticker: str, stored: PricePoint | None, *, deadline: float
    ) -> tuple[PricePoint | None, bool]:
        """Wait until ``deadline`` (monotonic) for the background fetch of ``ticker``: (the
        newest price there is, whether its fetch is still under way)."""
        key, pending, failed = (
            price_cache.current_key(ticker),
            pending_key(ticker),
            failed_key(ticker),
        )
        while True:
            values = cache.get_many([key, pending, failed])  # one round-trip a look
            value = values.get(key)
            if value == price_cache.NOT_FOUND:
                raise TickerNotFound(ticker)
            newer = isinstance(value, PricePoint) and (stored is None or value.as_of > stored.as_of)
            if newer:
                return value, False
            if pending not in values:  # the fetch is over, and brought nothing newer
                if stored is None and values.get(failed):
                    raise MarketDataUnavailable(values[failed])
                return (value if isinstance(value, PricePoint) else stored), False
            left = deadline - time.monotonic()
            if left <= 0:
                return stored, True
            time.sleep(min(AWAIT_POLL_SECONDS, left))

    def fetch_requested(self, ticker: str) -> str:
        """The worker's half of ``get_current_price`` (task ``marketdata.fetch_price``): fetch
        ``ticker`` unless a fresh bar is stored by now, and settle the request. Says what it
        did, in a line for the worker's log."""
        if self.upstream is None:
            return f"{ticker}: no provider configured"
        due = self.due_session()

        def fresh_stored() -> PricePoint | None:
            stored, fresh = self._stored_and_fresh(ticker, due)
            return stored if fresh else None

        failure = ""
        try:
            fetched = self.upstream.fetch(
                ticker, priority=Priority.INTERACTIVE, unless=fresh_stored
            )
        except TickerNotFound:
            return f"{ticker}: the provider does not know this ticker"
        except MarketDataUnavailable as exc:
            stored = PriceHistory.objects.latest_points([ticker]).get(ticker)
            if stored is not None:
                # Serve what we have, marked stale, and do not knock again for a minute.
                price_cache.remember(stored, RETRY_STORED_SECONDS)
            else:
                failure = str(exc)
            return f"{ticker}: failed: {exc}"
        finally:
            self.upstream.settle(ticker, failure=failure)
        return f"{ticker}: {fetched.point.price} as of {fetched.point.as_of:%Y-%m-%d %H:%M} UTC"

    def _stored_and_fresh(self, ticker: str, due: date) -> tuple[PricePoint | None, bool]:
        """The latest stored bar of ``ticker`` (one query) and whether it is fresh; a fresh one
        is cached as the current price."""
        stored = PriceHistory.objects.latest_points([ticker]).get(ticker)
        fresh = stored is not None and not self.judged(stored, due).is_stale
        if fresh:
            price_cache.remember(stored)
        return stored, fresh

    def _nothing_stored(self, ticker: str) -> NoStoredPrices:
        return NoStoredPrices(ticker, can_fetch=self.upstream is not None)

    @staticmethod
    def _raise_or_return(result: PricePoint | MarketDataError) -> PricePoint:
        if isinstance(result, MarketDataError):
            raise result
        return result

    def get_current_prices(self, tickers: Iterable[str]) -> dict[str, PricePoint | MarketDataError]:
        """Stored prices only, whatever the upstream: one cache round-trip and, for what is
        missing, one query."""
        wanted = list(dict.fromkeys(tickers))
        if not wanted:
            return {}
        keys = {price_cache.current_key(t): t for t in wanted}
        states = []
        if self.upstream is not None:  # which are being fetched, in the same round-trip
            states = [pending_key(t) for t in wanted] + [failed_key(t) for t in wanted]
        cached = cache.get_many([*keys, *states])  # one round-trip, whatever the count
        found: dict[str, PricePoint] = {}
        unknown: set[str] = set()
        for key, value in cached.items():
            if isinstance(value, PricePoint):
                found[keys[key]] = value
            elif value == price_cache.NOT_FOUND:
                unknown.add(keys[key])  # the negative cache: the provider said no such ticker
        missing = [t for t in wanted if t not in found and t not in unknown]
        cache_stats.count_reads(hits=len(wanted) - len(missing), misses=len(missing))
        if missing:
            from_db = PriceHistory.objects.latest_points(missing)  # one query
            if from_db:
                ttl = settings.PAPERTRADE.cache.price_ttl_seconds
                cache.set_many(
                    {price_cache.current_key(t): p for t, p in from_db.items()}, timeout=ttl
                )
            found.update(from_db)
        due = self.due_session()
        answers: dict[str, PricePoint | MarketDataError] = {}
        for t in wanted:
            fetching = states and pending_key(t) in cached
            if t in found:
                point = self.judged(found[t], due)
                answers[t] = point.replace(pending=True) if fetching and point.is_stale else point
            elif t in unknown:
                answers[t] = TickerNotFound(t)
            elif fetching:
                answers[t] = PriceFetching(t)
            elif states and cached.get(failed_key(t)):
                answers[t] = MarketDataUnavailable(cached[failed_key(t)])
            else:
                answers[t] = self._nothing_stored(t)
        return answers

    # --- history --------------------------------------------------------------------------
    def get_prices_at(
        self, tickers: Iterable[str], when: datetime
    ) -> dict[str, PricePoint | MarketDataError]:
        wanted = list(dict.fromkeys(tickers))
        found = PriceHistory.objects.latest_points(wanted, at=when) if wanted else {}
        due = self.due_session(at=when)
        return {
            t: self.judged(found[t], due) if t in found else self._nothing_stored(t) for t in wanted
        }

    def get_price_at(self, ticker: str, when: datetime, *, adjusted: bool = False) -> PricePoint:
        """The last stored daily bar at or before ``when``, with the close before it.

        Its staleness is judged against ``when``, not now: Saturday's price is Friday's close,
        fresh; a moment after the last stored bar whose session's bar is due gets that bar
        marked stale. Raises TickerNotFound when nothing is stored for ``ticker``, and
        MarketDataUnavailable when ``when`` is before its first stored bar.
        """
        # ``latest_points`` bounded by the moment: two rows of one index range scan, the
        # previous close already in the shares of a split on the bar's own session.
        point = PriceHistory.objects.latest_points([ticker], at=when).get(ticker)
        if point is None:
            first = (
                PriceHistory.objects.daily(ticker)
                .order_by("timestamp")
                .values_list("timestamp", flat=True)
                .first()
            )
            if first is None:
                raise self._nothing_stored(ticker)
            raise MarketDataUnavailable(
                f"No price for {ticker} is stored at or before {when:%Y-%m-%d %H:%M} UTC: its "
                f"first stored bar is {session_date(first):%Y-%m-%d}."
            )
        point = self.judged(point, self.due_session(at=when))
        if adjusted:  # one more query: the splits after its session
            splits = CorporateAction.objects.splits_after([ticker], point.session_date)
            point = split_adjusted([point], splits.get(ticker, []))[0]
        return point

    def get_price_history(
        self, ticker: str, start: date, end: date, *, adjusted: bool = False
    ) -> list[PricePoint]:
        """``_history`` as stored (as traded) or, ``adjusted``, in today's shares: one more
        query, for the splits after ``start``."""
        points = self._history(ticker, start, end)
        if adjusted and points:
            splits = CorporateAction.objects.splits_after([ticker], points[0].session_date)
            points = split_adjusted(points, splits.get(ticker, []))
        return points

    def get_corporate_actions(
        self, tickers: Iterable[str], *, since: date | None = None
    ) -> list[CorporateActionPoint]:
        rows = CorporateAction.objects.filter(ticker__in=list(tickers))
        if since is not None:
            rows = rows.filter(date__gte=since)
        return rows.points()

    def _history(self, ticker: str, start: date, end: date) -> list[PricePoint]:
        """Daily bars with session dates ``start``..``end`` inclusive, oldest first (one index
        range scan); TickerNotFound when nothing at all is stored for ``ticker``.

        With an upstream part, only when the latest NYSE session due within [start, end] is
        missing does one call (interactive priority) top the history up, and only if one call
        can bring that session (a free key's compact answer holds the last 100 sessions;
        ``full`` needs ``market_data.premium``). When the top-up fails (quota spent, provider
        down) the stored bars are the answer.
        """
        points = self._stored_history(ticker, start, end)
        if self.upstream is None:
            if points is None:
                raise self._nothing_stored(ticker)
            return points
        if points is not None:
            due = self._latest_due_session_within(start, end)
            if due is None or (points and points[-1].session_date >= due):
                return points  # complete up to the newest session there is to have
            if not self.upstream.reaches(due) or price_cache.said_unknown(ticker):
                return points
        elif price_cache.said_unknown(ticker):
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

    def _stored_history(self, ticker: str, start: date, end: date) -> list[PricePoint] | None:
        """The stored bars from ``start`` to ``end``; None when nothing is stored at all."""
        points = PriceHistory.objects.history_points(ticker, start, end)
        if not points and not PriceHistory.objects.daily(ticker).exists():
            return None
        return points

    def _top_up(self, ticker: str) -> None:
        """Ask for one background fetch of ``ticker``'s newest bars at interactive priority (a
        person asked); this read does not wait for it (the next one sees the bars). After a
        try, reads do not knock again for a while: a provider that is late with a bar, or
        failing, is not asked on every read."""
        assert self.upstream is not None
        key = TOPUP_KEY.format(ticker=ticker)
        if cache.get(key) is not None:
            return  # tried lately: what is stored is the answer for now
        self.upstream.request(ticker)  # the background fetch (at once, in tests: eager Celery)
        cache.set(key, "asked", settings.PAPERTRADE.cache.price_ttl_seconds)
        if price_cache.said_unknown(ticker):
            raise TickerNotFound(ticker)

    def _latest_due_session_within(self, start: date, end: date) -> date | None:
        """The newest NYSE session from ``start`` to ``end`` whose bar is due by now."""
        import pandas as pd  # loaded with the calendar (see trading_calendar)

        cal = nyse()
        newest = pd.Timestamp(min(end, self.due_session()))
        if newest < cal.first_session:
            return None
        session = cal.date_to_session(min(newest, cal.last_session), "previous").date()
        return session if session >= start else None

    def get_closes(
        self, tickers: Iterable[str], start: date, end: date
    ) -> dict[str, list[tuple[date, Decimal]]]:
        return PriceHistory.objects.closes(list(dict.fromkeys(tickers)), start, end)

    def get_stored_bars(
        self, tickers: Iterable[str], start: date, end: date
    ) -> dict[str, list[tuple[PricePoint, datetime]]]:
        wanted = list(dict.fromkeys(tickers))
        found: dict[str, list[tuple[PricePoint, datetime]]] = {t: [] for t in wanted}
        rows = PriceHistory.objects.filter(
            ticker__in=wanted,
            interval=Interval.DAILY,
            timestamp__gte=day_start(start),
            timestamp__lt=day_start(end + timedelta(days=1)),
        ).order_by("ticker", "timestamp")
        for row in rows:
            found[row.ticker].append((row.point(), row.fetched_at))
        return found

    def sessions(self, start: date, end: date) -> list[date]:
        import pandas as pd  # loaded with the calendar (see trading_calendar)

        cal = nyse()
        first = max(pd.Timestamp(start), cal.first_session)
        last = min(pd.Timestamp(end), cal.last_session)
        if first > last:
            return []
        return [day.date() for day in cal.sessions_in_range(first, last)]

    def stored_range(self) -> tuple[date, date] | None:
        key = price_cache.STORED_RANGE_KEY.format(version=price_cache.prices_version())
        found = cache.get(key)
        if found is None:
            bounds = PriceHistory.objects.filter(interval=Interval.DAILY).aggregate(
                first=Min("timestamp"), last=Max("timestamp")
            )
            found = (
                (session_date(bounds["first"]), session_date(bounds["last"]))
                if bounds["first"]
                else ()
            )
            cache.set(key, found, timeout=settings.PAPERTRADE.cache.price_ttl_seconds)
        return tuple(found) or None

    def prices_version(self) -> int:
        return price_cache.prices_version()

    # --- search ---------------------------------------------------------------------------
    def company_names(self, tickers: Iterable[str]) -> dict[str, str]:
        names = bundled_symbols()
        return {t: names[t] for t in tickers if t in names}

    def search_symbols(self, query: str) -> list[SymbolMatch]:
        """Known symbols first; the provider is asked (once per query, cached) only when
        nothing local matches, so typing costs no quota."""
        local = search_local(query, priced_first=self.upstream is None)
        if self.upstream is None or local or len(query.strip()) < 2:
            return local
        seen = {m.ticker for m in local}
        merged = list(local)
        for match in self.upstream.search(query.strip()):
            if match.ticker not in seen:
                seen.add(match.ticker)
                merged.append(match)
        return merged[:SEARCH_LIMIT]


def demo_as_of() -> date | None:
    """The session date of the newest stored bar, for the "demo data, as of" banner."""
    value = cache.get(price_cache.DEMO_AS_OF_KEY)
    if value is None:
        latest = PriceHistory.objects.order_by("-timestamp").values_list("timestamp", flat=True)
        newest = latest.first()
        value = timezone.localdate(newest) if newest else ""
        cache.set(
            price_cache.DEMO_AS_OF_KEY, value, timeout=settings.PAPERTRADE.cache.price_ttl_seconds
        )
    return value or None
