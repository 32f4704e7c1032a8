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
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from marketdata import cache_stats, price_cache
from marketdata.models import PriceHistory
from marketdata.port import (
    MarketDataError,
    MarketDataUnavailable,
    PricePoint,
    SymbolMatch,
    TickerNotFound,
    session_date,
)
from marketdata.quota import Priority
from marketdata.symbols import search_local
from marketdata.trading_calendar import latest_due_close, nyse
from marketdata.upstream import Upstream

RETRY_STORED_SECONDS = 60  # after a failed fetch, serve the stored bar this long before retrying
TOPUP_KEY = "md:v2:topped-up:{ticker}"  # a history top-up was tried lately: do not knock again
SEARCH_LIMIT = 10


class TieredMarketData:
    """The port over the cache, the stored history and, if given, an upstream part."""

    def __init__(self, *, upstream: Upstream | None = None, clock=timezone.now) -> None:
        self.upstream = upstream
        self.clock = clock

    # --- staleness ------------------------------------------------------------------------
    def due_session(self, at: datetime | None = None) -> date:
        """The session date of the newest bar that should be published by now (or by ``at``,
        when that is earlier: history is judged against its own moment, not the present)."""
        grace = timedelta(minutes=settings.PAPERTRADE.staleness.grace_minutes)
        now = self.clock()
        return session_date(latest_due_close(min(at, now) if at else now, grace))

    @staticmethod
    def judged(point: PricePoint, due_session: date) -> PricePoint:
        stale = session_date(point.as_of) < due_session
        return point.replace(is_stale=stale) if stale != point.is_stale else point

    # --- current prices -------------------------------------------------------------------
    def get_current_price(self, ticker: str) -> PricePoint:
        """Cache → database → upstream (when the stored bar is missing or stale).

        On a miss, one request per ticker (the holder of the upstream part's single-flight
        lock) reads the database and, if its bar is missing or stale, calls the provider;
        concurrent requests wait for its answer in the cache without touching the database,
        and fall back to the stored bar if it has none to share. A failed fetch serves the
        stored bar, marked stale, for a minute before anyone asks again.
        """
        due = self.due_session()
        cached = cache.get(price_cache.current_key(ticker))
        if cached == price_cache.NOT_FOUND:
            raise TickerNotFound(ticker)
        if isinstance(cached, PricePoint):
            return self.judged(cached, due)
        if self.upstream is None:
            return self._raise_or_return(self.get_current_prices([ticker])[ticker])
        stored: list[PricePoint | None] = []

        def fresh_stored() -> PricePoint | None:
            point = PriceHistory.objects.latest_points([ticker]).get(ticker)
            stored.append(point)
            if point is not None and not self.judged(point, due).is_stale:
                price_cache.remember(point)
                return point
            return None

        try:
            fetched = self.upstream.fetch(
                ticker, priority=Priority.INTERACTIVE, unless=fresh_stored
            )
        except TickerNotFound:
            raise
        except MarketDataUnavailable:
            point = (
                stored[0] if stored else PriceHistory.objects.latest_points([ticker]).get(ticker)
            )
            if point is None:
                raise
            # Serve what we have, marked stale, and do not knock again for a minute.
            price_cache.remember(point, RETRY_STORED_SECONDS)
            return self.judged(point, due)
        return self.judged(fetched.point, due)

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
        cached = cache.get_many(list(keys))  # one round-trip, whatever the count
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
        return {t: self.judged(found[t], due) if t in found else TickerNotFound(t) for t in wanted}

    # --- history --------------------------------------------------------------------------
    def get_price_at(self, ticker: str, when: datetime) -> PricePoint:
        """The last stored daily bar at or before ``when``, with the close before it.

        Its staleness is judged against ``when``, not now: Saturday's price is Friday's close,
        fresh; a moment after the last stored bar whose session's bar is due gets that bar
        marked stale. Raises TickerNotFound when nothing is stored for ``ticker``, and
        MarketDataUnavailable when ``when`` is before its first stored bar.
        """
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
                raise TickerNotFound(ticker)
            raise MarketDataUnavailable(
                f"No price for {ticker} is stored at or before {when:%Y-%m-%d %H:%M} UTC: its "
                f"first stored bar is {session_date(first):%Y-%m-%d}."
            )
        previous = rows[1].close if len(rows) > 1 else None
        return self.judged(rows[0].point(previous_close=previous), self.due_session(at=when))

    def get_price_history(self, ticker: str, start: date, end: date) -> list[PricePoint]:
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
                raise TickerNotFound(ticker)
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
        """One upstream fetch of ``ticker``'s newest bars at interactive priority (a person
        asked). After a try, whatever its outcome, reads do not knock again for a while: a
        provider that is late with a bar, or failing, is not asked on every read."""
        assert self.upstream is not None
        key = TOPUP_KEY.format(ticker=ticker)
        if cache.get(key) is not None:
            return  # tried lately: what is stored is the answer for now
        try:
            self.upstream.fetch(ticker, priority=Priority.INTERACTIVE)
        except TickerNotFound:
            raise
        except MarketDataError:
            cache.set(key, "failed", RETRY_STORED_SECONDS)
            raise
        cache.set(key, "done", settings.PAPERTRADE.cache.price_ttl_seconds)

    def _latest_due_session_within(self, start: date, end: date) -> date | None:
        """The newest NYSE session from ``start`` to ``end`` whose bar is due by now."""
        import pandas as pd  # loaded with the calendar (see trading_calendar)

        cal = nyse()
        newest = pd.Timestamp(min(end, self.due_session()))
        if newest < cal.first_session:
            return None
        session = cal.date_to_session(min(newest, cal.last_session), "previous").date()
        return session if session >= start else None

    # --- search ---------------------------------------------------------------------------
    def search_symbols(self, query: str) -> list[SymbolMatch]:
        """Known symbols first; the provider is asked (once per query, cached) only when
        nothing local matches, so typing costs no quota."""
        local = search_local(query)
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
