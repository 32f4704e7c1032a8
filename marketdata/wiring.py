"""Builds the configured implementation of the price port (``settings.PAPERTRADE_PRICE_PORT``
names :func:`get_market_data`): the tiers, with an upstream part when a provider key is set.

The refresh job and ``import_prices`` drive the same upstream part through
:func:`get_upstream`; None means there is no provider (the offline demo). A web request's
fetch goes to a Celery worker through :func:`enqueue_fetch`.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings

from marketdata.tiers import TieredMarketData
from marketdata.upstream import Upstream


def is_live() -> bool:
    """True when a provider key is configured; otherwise the app runs on stored prices only."""
    return bool(settings.ALPHA_VANTAGE_API_KEY)


def get_market_data() -> TieredMarketData:
    """The port for this configuration: live when a provider key is set, stored-only without."""
    return _market_data(get_upstream())


def get_upstream() -> Upstream | None:
    """The upstream part for this configuration, or None without a provider key."""
    if not is_live():
        return None
    md = settings.PAPERTRADE.market_data
    return _upstream(
        settings.ALPHA_VANTAGE_API_KEY,
        settings.ALPHA_VANTAGE_BASE_URL,
        md.request_timeout_seconds,
        md.premium,
    )


@cache
def _market_data(upstream: Upstream | None) -> TieredMarketData:
    return TieredMarketData(upstream=upstream)


FETCH_TASK = "marketdata.fetch_price"  # marketdata.tasks.fetch_price_task


def enqueue_fetch(ticker: str) -> None:
    """Queue the background fetch of ``ticker`` (by the task's name: the tasks module imports
    this one). Publishing is not retried, so a broker that is down fails the request at once
    instead of holding it. With ``task_always_eager`` (tests) the task runs here and now."""
    from celery import current_app

    if current_app.conf.task_always_eager:
        current_app.tasks[FETCH_TASK].apply(args=[ticker])
    else:
        current_app.send_task(FETCH_TASK, args=[ticker], retry=False)


@cache
def _upstream(api_key: str, base_url: str, timeout: float, premium: bool) -> Upstream:
    from marketdata.alpha_vantage import AlphaVantageClient

    client = AlphaVantageClient(
        api_key=api_key, base_url=base_url, timeout=timeout, premium=premium
    )
    return Upstream(client=client, enqueue=enqueue_fetch)
