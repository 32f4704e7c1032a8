"""The price port: the only way the rest of the app gets prices.

``portfolios`` imports this module and nothing else from ``marketdata``. Prices are ``Decimal``
(4 places), times are timezone-aware UTC ``datetime``s; a daily bar is stamped at its session's
close (16:00 America/New_York).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol


class MarketDataError(Exception):
    """Base of every market-data failure."""


class TickerNotFound(MarketDataError):
    """Nobody knows this ticker: not the stored history, not the provider."""

    def __init__(self, ticker: str, message: str = "") -> None:
        self.ticker = ticker
        super().__init__(message or f"No prices are known for {ticker}.")


class MarketDataUnavailable(MarketDataError):
    """The price cannot be had right now (provider down, garbage answer); try again later."""


class RateLimited(MarketDataUnavailable):
    """The call quota is spent; ``retry_at`` (UTC) says when it frees up, if known.

    ``scope`` says which limit: "second" (burst spacing), "minute", "day", or "upstream" (the
    provider itself answered with a rate-limit message).
    """

    def __init__(
        self, message: str = "", retry_at: datetime | None = None, scope: str = ""
    ) -> None:
        self.retry_at = retry_at
        self.scope = scope
        super().__init__(message or "The market-data quota is spent for now.")


class ProviderMisconfigured(MarketDataUnavailable):
    """The provider refuses our configuration (missing or demo key, a premium-only request):
    retrying will not help until an operator changes the key or ``config.toml``."""


class Source:
    """Where a price came from."""

    ALPHA_VANTAGE = "alpha_vantage"
    IMPORT = "import"

    LABELS = {ALPHA_VANTAGE: "Alpha Vantage", IMPORT: "Imported"}


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One price of one ticker.

    ``price`` is the close of the bar (the last traded price for an intraday quote).
    ``previous_close`` is the close of the trading day before, when known (for day change).
    ``is_stale`` says a newer bar should exist by now (judged against the NYSE calendar).
    """

    ticker: str
    price: Decimal
    as_of: datetime
    source: str
    currency: str = "USD"
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    close: Decimal | None = None
    volume: int | None = None
    previous_close: Decimal | None = None
    is_stale: bool = False

    @property
    def source_label(self) -> str:
        return Source.LABELS.get(self.source, self.source)

    @property
    def session_date(self) -> date:
        from marketdata.trading_calendar import session_date

        return session_date(self.as_of)

    @property
    def session_start(self) -> datetime:
        """Midnight New York at the start of its session's day, in UTC: no trade can have
        filled at this price before then."""
        from marketdata.trading_calendar import day_start, session_date

        return day_start(session_date(self.as_of))


def daily_points(
    ticker: str,
    rows: Iterable[tuple[datetime, Decimal, Decimal, Decimal, Decimal, int | None, str]],
) -> list[PricePoint]:
    """PricePoints of daily bars, from (as_of, open, high, low, close, volume, source) rows.

    The same points as ``PricePoint(ticker=..., price=close, as_of=..., ...)``, built twice as
    fast: a frozen dataclass's ``__init__`` sets each of the twelve fields through
    ``object.__setattr__`` (4 µs a point, 20 ms for twenty years of bars); this sets them through
    the slots' own descriptors.
    """
    new = object.__new__
    set_ticker, set_price, set_as_of, set_source = (
        _SLOT_SETTERS[name] for name in ("ticker", "price", "as_of", "source")
    )
    set_currency, set_open, set_high, set_low = (
        _SLOT_SETTERS[name] for name in ("currency", "open", "high", "low")
    )
    set_close, set_volume, set_previous_close, set_is_stale = (
        _SLOT_SETTERS[name] for name in ("close", "volume", "previous_close", "is_stale")
    )
    points = []
    for as_of, open_, high, low, close, volume, source in rows:
        point = new(PricePoint)
        set_ticker(point, ticker)
        set_price(point, close)
        set_as_of(point, as_of)
        set_source(point, source)
        set_currency(point, "USD")
        set_open(point, open_)
        set_high(point, high)
        set_low(point, low)
        set_close(point, close)
        set_volume(point, volume)
        set_previous_close(point, None)
        set_is_stale(point, False)
        points.append(point)
    return points


# Every field must be set above: a test compares daily_points with PricePoint(...).
_SLOT_SETTERS = {f.name: PricePoint.__dict__[f.name].__set__ for f in fields(PricePoint)}


@dataclass(frozen=True, slots=True)
class SymbolMatch:
    ticker: str
    name: str
    region: str = "United States"
    currency: str = "USD"


class MarketDataPort(Protocol):
    def get_current_price(self, ticker: str) -> PricePoint:
        """The latest price of ``ticker``; raises TickerNotFound or MarketDataUnavailable."""

    def get_current_prices(self, tickers: Iterable[str]) -> dict[str, PricePoint | MarketDataError]:
        """Latest prices of many tickers at once: one cache round-trip, one query."""

    def get_price_at(self, ticker: str, when: datetime) -> PricePoint:
        """The last daily bar at or before ``when`` (UTC)."""

    def get_price_history(self, ticker: str, start: date, end: date) -> list[PricePoint]:
        """Daily bars with session dates from ``start`` to ``end`` inclusive, oldest first."""

    def search_symbols(self, query: str) -> list[SymbolMatch]:
        """Tickers matching ``query`` (prefix of ticker or name), best first."""


def get_price_port() -> MarketDataPort:
    """The configured implementation of the port."""
    from marketdata.services import get_market_data

    return get_market_data()
