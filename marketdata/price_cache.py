"""The hot tier's keys: each ticker's current price (or the provider's "no such ticker") in
the Django cache, shared by every process.

Cached entries hold the bar as stored; staleness is judged on every read, never cached. Bump
the version in the prefix when the value's shape changes (old entries are then never read).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache

from marketdata.port import PricePoint, market_data_stored

CURRENT_KEY = "md:v2:current:{ticker}"  # a PricePoint, or NOT_FOUND (the negative cache)
DEMO_AS_OF_KEY = "md:v2:demo-as-of"
PRICES_VERSION_KEY = "md:v1:prices-version"  # bumped whenever bars or actions are stored
STORED_RANGE_KEY = "md:v1:stored-range:{version}"
NOT_FOUND = "not-found"


def current_key(ticker: str) -> str:
    return CURRENT_KEY.format(ticker=ticker)


def remember(point: PricePoint, ttl: int | None = None) -> None:
    """Cache ``point`` as its ticker's current price (``cache.price_ttl_seconds`` by default)."""
    if ttl is None:
        ttl = settings.PAPERTRADE.cache.price_ttl_seconds
    cache.set(current_key(point.ticker), point, ttl)


def remember_unknown(ticker: str) -> None:
    """The provider said it knows no such ticker: answer so, for ``negative_ttl_seconds``."""
    cache.set(current_key(ticker), NOT_FOUND, settings.PAPERTRADE.cache.negative_ttl_seconds)


def said_unknown(ticker: str) -> bool:
    """The provider said lately that it knows no such ticker (the negative cache)."""
    return cache.get(current_key(ticker)) == NOT_FOUND


def forget_current_prices(tickers: Iterable[str]) -> None:
    """Drop cached current prices after new bars were stored for ``tickers``."""
    cache.delete_many([current_key(t) for t in tickers] + [DEMO_AS_OF_KEY])


def announce_stored(tickers: Iterable[str]) -> None:
    """New bars or actions of ``tickers`` were stored and committed: drop their cached prices
    and tell the listeners of ``market_data_stored`` (the ledger applies splits and dividends)."""
    tickers = tuple(dict.fromkeys(tickers))
    if tickers:
        forget_current_prices(tickers)
        bump_prices_version()
        market_data_stored.send(sender=announce_stored, tickers=tickers)


def prices_version() -> int:
    """See ``MarketDataPort.prices_version``: 0 until anything was stored (or while the cache
    is away, which makes every derived entry a miss, never a stale hit: its key then ends 0 and
    is cached no longer than its own timeout)."""
    value = cache.get(PRICES_VERSION_KEY)
    return value if isinstance(value, int) else 0


def bump_prices_version() -> None:
    if not cache.add(PRICES_VERSION_KEY, 1, timeout=None):
        try:
            cache.incr(PRICES_VERSION_KEY)
        except ValueError:  # gone between the two calls
            cache.add(PRICES_VERSION_KEY, 1, timeout=None)
