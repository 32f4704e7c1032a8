"""The price port: the only way the rest of the app gets prices.

``portfolios`` imports this module and nothing else from ``marketdata``. Prices are ``Decimal``
(4 places), times are timezone-aware UTC ``datetime``s; a daily bar is stamped at its session's
close (16:00 America/New_York).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
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
