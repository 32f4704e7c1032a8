"""The price port: the only way the rest of the app gets prices.

A pure contract: the Protocol, its value types (``PricePoint``, ``SymbolMatch``), its errors,
the ticker rules every caller needs, and the market's clock (a daily bar is stamped at its
session's close, 16:00 America/New_York; times are timezone-aware UTC). Prices are ``Decimal``
(4 places).

``portfolios`` imports this module and nothing else from ``marketdata``, and this module imports
nothing else from ``marketdata`` (``marketdata/tests/test_import_graph.py`` holds both rules):
the configured implementation is built by the factory named in
``settings.PAPERTRADE_PRICE_PORT`` (``marketdata.wiring.get_market_data``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cache
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

from django.dispatch import Signal

# --- what happened ------------------------------------------------------------------------------
# Sent after new daily bars or corporate actions of ``tickers`` are stored (by a refresh, an
# import, a fetch), once their transaction has committed: what keeps positions in step with the
# market (the ledger applies splits and dividends) listens here.
market_data_stored = Signal()  # providing_args: tickers (a tuple of str)


# --- the market's clock -------------------------------------------------------------------------
NEW_YORK = ZoneInfo("America/New_York")
CLOSE_TIME = time(16, 0)
OPEN_TIME = time(9, 30)


def close_of(day: date) -> datetime:
    """The UTC time of a regular session's close on ``day`` (16:00 New York)."""
    return datetime.combine(day, CLOSE_TIME, tzinfo=NEW_YORK).astimezone(UTC)


def open_of(day: date) -> datetime:
    """The UTC time of a regular session's open on ``day`` (09:30 New York)."""
    return datetime.combine(day, OPEN_TIME, tzinfo=NEW_YORK).astimezone(UTC)


def day_start(day: date) -> datetime:
    """Midnight New York at the start of ``day``, in UTC."""
    return datetime.combine(day, time(0), tzinfo=NEW_YORK).astimezone(UTC)


def session_date(moment: datetime) -> date:
    """The New York calendar date of ``moment``."""
    return moment.astimezone(NEW_YORK).date()


# --- errors -------------------------------------------------------------------------------------
class MarketDataError(Exception):
    """Base of every market-data failure."""


class TickerNotFound(MarketDataError):
    """Nobody knows this ticker: not the stored history, not the provider."""

    def __init__(self, ticker: str, message: str = "") -> None:
        self.ticker = ticker
        super().__init__(message or f"No prices are known for {ticker}.")


class NoStoredPrices(TickerNotFound):
    """Nothing is stored for ``ticker``, and it may well be a ticker: no provider said it is
    not. ``can_fetch`` says whether a provider is configured that could fetch its prices."""

    def __init__(self, ticker: str, *, can_fetch: bool) -> None:
        self.can_fetch = can_fetch
        how = "" if can_fetch else " Setting an Alpha Vantage API key would fetch them."
        super().__init__(ticker, f"No stored prices for {ticker}.{how}")


class MarketDataUnavailable(MarketDataError):
    """The price cannot be had right now (provider down, garbage answer); try again later."""


class PriceFetching(MarketDataUnavailable):
    """No price of ``ticker`` is stored yet; one is being fetched and shows up in a moment."""

    def __init__(self, ticker: str, message: str = "") -> None:
        self.ticker = ticker
        super().__init__(
            message or f"The price of {ticker} is being fetched; it shows here in a moment."
        )


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


# --- tickers and queries ------------------------------------------------------------------------
TICKER_MAX_LENGTH = 10
TICKER_RE = re.compile(r"[A-Z0-9][A-Z0-9.\-]{0,9}")
MAX_QUERY_LENGTH = 40
_TICKER_CHARACTERS = (
    "A ticker may contain only letters, digits, '.' and '-', and starts with a letter or digit."
)


class InvalidTicker(ValueError):
    """Not something that can be a ticker (the message says why)."""


def normalize_ticker(raw: object) -> str:
    """Return ``raw`` stripped and upper-cased, or raise InvalidTicker saying what is wrong."""
    if not isinstance(raw, str):
        raise InvalidTicker("Enter a ticker symbol.")
    # ASCII first: Unicode case mapping would turn "ıbm" into "IBM" and "ß" into "SS".
    if not raw.isascii():
        raise InvalidTicker(_TICKER_CHARACTERS)
    ticker = raw.strip().upper()
    if not ticker:
        raise InvalidTicker("Enter a ticker symbol.")
    if len(ticker) > TICKER_MAX_LENGTH:
        raise InvalidTicker(f"A ticker has at most {TICKER_MAX_LENGTH} characters.")
    if not TICKER_RE.fullmatch(ticker):
        raise InvalidTicker(_TICKER_CHARACTERS)
    return ticker


def clean_query(query: object) -> str:
    """A search query as searched: printable, trimmed, at most MAX_QUERY_LENGTH characters."""
    if not isinstance(query, str):
        return ""
    text = "".join(c for c in query if c.isprintable()).strip()
    return text[:MAX_QUERY_LENGTH]


# --- values -------------------------------------------------------------------------------------
class Source:
    """Where a price came from."""

    ALPHA_VANTAGE = "alpha_vantage"
    IMPORT = "import"

    LABELS = {ALPHA_VANTAGE: "Alpha Vantage", IMPORT: "Imported"}


class PricePoint(NamedTuple):
    """One price of one ticker (immutable; ``replace`` makes a changed copy).

    ``price`` is the close of the bar (the last traded price for an intraday quote).
    ``previous_close`` is the close of the trading day before, when known (for day change).
    ``is_stale`` says a newer bar should exist by now (judged against the NYSE calendar).
    ``pending`` says a fetch of a newer price is under way (it shows up in a moment).
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
    pending: bool = False

    def replace(self, **changes) -> PricePoint:
        return self._replace(**changes)

    @property
    def source_label(self) -> str:
        return Source.LABELS.get(self.source, self.source)

    @property
    def session_date(self) -> date:
        return session_date(self.as_of)

    @property
    def session_start(self) -> datetime:
        """Midnight New York at the start of its session's day, in UTC: no trade can have
        filled at this price before then."""
        return day_start(session_date(self.as_of))


class ActionKind:
    """What a corporate action is."""

    SPLIT = "SPLIT"
    DIVIDEND = "DIVIDEND"

    LABELS = {SPLIT: "Split", DIVIDEND: "Dividend"}


class CorporateActionPoint(NamedTuple):
    """One split or cash dividend of one ticker.

    ``date`` is a split's effective date (the first session traded at the new share count) or
    a dividend's ex-date (a share bought that session or later does not get it). ``value`` is a
    split's factor (new shares per old share: 10 for a 10-for-1, 0.1 for a 1-for-10 reverse
    split) or a dividend's cash per share in USD. ``pay_date`` is when a dividend is paid, when
    known.
    """

    ticker: str
    kind: str
    date: date
    value: Decimal
    source: str
    pay_date: date | None = None
    record_date: date | None = None

    @property
    def is_split(self) -> bool:
        return self.kind == ActionKind.SPLIT

    @property
    def payable_on(self) -> date:
        """The day a dividend is credited: its pay date, or its ex-date when none is known."""
        return self.pay_date or self.date

    @property
    def label(self) -> str:
        if self.is_split:
            new, old = self.value.as_integer_ratio()
            return f"{new}-for-{old} split"
        return f"dividend of ${self.value.normalize():f} a share"

    @property
    def source_label(self) -> str:
        return Source.LABELS.get(self.source, self.source)


@dataclass(frozen=True, slots=True)
class SymbolMatch:
    ticker: str
    name: str
    region: str = "United States"
    currency: str = "USD"
    has_prices: bool = False  # some daily bar of it is stored: its page and orders work offline


# --- the port -----------------------------------------------------------------------------------
class MarketDataPort(Protocol):
    def get_current_price(self, ticker: str, *, wait: float | None = None) -> PricePoint:
        """The latest price of ``ticker``; raises TickerNotFound or MarketDataUnavailable.

        When the stored price is missing or stale this read may start a fetch (in the
        background) and waits for it at most ``wait`` seconds (None: the configured request
        budget; 0: not at all). Past that it answers what is stored, marked ``pending``, or
        raises PriceFetching when nothing is.
        """

    def get_current_prices(self, tickers: Iterable[str]) -> dict[str, PricePoint | MarketDataError]:
        """Latest stored prices of many tickers at once (one cache round-trip, one query); it
        starts no fetch. A ticker being fetched is ``pending`` (PriceFetching if nothing is
        stored)."""

    def get_prices_at(
        self, tickers: Iterable[str], when: datetime
    ) -> dict[str, PricePoint | MarketDataError]:
        """``get_price_at`` for many tickers at once, as traded, in one query (a time-machine
        portfolio's page): NoStoredPrices for a ticker with nothing stored at or before it."""

    def get_price_at(self, ticker: str, when: datetime, *, adjusted: bool = False) -> PricePoint:
        """The last daily bar at or before ``when`` (UTC). ``adjusted``: in today's shares
        (prices divided by the factors of the splits recorded after its session)."""

    def get_price_history(
        self, ticker: str, start: date, end: date, *, adjusted: bool = False
    ) -> list[PricePoint]:
        """Daily bars with session dates from ``start`` to ``end`` inclusive, oldest first.
        Stored as traded; ``adjusted``: each bar divided by the factors of the splits recorded
        after its session (volume multiplied), so the series is continuous across them."""

    def get_corporate_actions(
        self, tickers: Iterable[str], *, since: date | None = None
    ) -> list[CorporateActionPoint]:
        """The recorded splits and dividends of ``tickers`` (dated ``since`` or later), oldest
        first, then splits before dividends of the same date."""

    def get_closes(
        self, tickers: Iterable[str], start: date, end: date
    ) -> dict[str, list[tuple[date, Decimal]]]:
        """The stored daily closes, as traded, of many tickers from ``start`` to ``end``: {ticker:
        [(session date, close), ...] oldest first}, in one query whatever the count."""

    def get_stored_bars(
        self, tickers: Iterable[str], start: date, end: date
    ) -> dict[str, list[tuple[PricePoint, datetime]]]:
        """The stored daily bars, as traded, of many tickers from ``start`` to ``end``, each with
        when it was fetched (a bar of a session still in progress is a live quote: its close is
        the last price at that time): {ticker: [(bar, fetched at), ...] oldest first}, in one
        query. Never fetches."""

    def sessions(self, start: date, end: date) -> list[date]:
        """The NYSE sessions from ``start`` to ``end`` inclusive."""

    def stored_range(self) -> tuple[date, date] | None:
        """The first and the last session of any stored daily bar (None: nothing stored)."""

    def prices_version(self) -> int:
        """A number that changes whenever bars or corporate actions are stored: what a reader
        caching something derived from them keys it on."""

    def search_symbols(self, query: str) -> list[SymbolMatch]:
        """Tickers matching ``query`` (prefix of ticker or name), best first."""

    def company_names(self, tickers: Iterable[str]) -> dict[str, str]:
        """The company name of each ticker whose name is known without asking anyone."""


def get_price_port() -> MarketDataPort:
    """The configured implementation of the port (``settings.PAPERTRADE_PRICE_PORT``)."""
    from django.conf import settings

    return _factory(settings.PAPERTRADE_PRICE_PORT)()


@cache
def _factory(path: str):
    from django.utils.module_loading import import_string

    return import_string(path)
