"""No web request waits on the provider: a read hands its fetch to a background worker and
waits for the answer at most the request budget; the worker's half stores it and settles the
request. The queue here is a list (what a Celery publish would carry); the worker's half runs
when the test says so, as a worker would.
"""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

import pytest
from django.core.cache import cache

from marketdata.port import (
    MarketDataUnavailable,
    PriceFetching,
    PricePoint,
    Source,
    TickerNotFound,
)
from marketdata.tests.factories import store_bars
from marketdata.tiers import TieredMarketData
from marketdata.upstream import Upstream, pending_key

DAILY = "TIME_SERIES_DAILY"

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(live):
    """The live port with its background queue replaced by a list: (port, queued tickers)."""
    tickers: list[str] = []
    upstream = Upstream(client=live.upstream.client, enqueue=tickers.append)
    return TieredMarketData(upstream=upstream), tickers


def test_a_new_ticker_is_fetched_in_the_background_not_in_the_request(queued, fake_av):
    port, tickers = queued
    port.due_session()  # the NYSE calendar is built, as in a running server

    started = time.monotonic()
    with pytest.raises(PriceFetching, match="NEWCO is being fetched"):
        port.get_current_price("NEWCO", wait=0.3)
    assert 0.3 <= time.monotonic() - started < 1.8  # waited the budget, not the provider
    assert fake_av.count() == 0  # the request itself never called the provider
    assert tickers == ["NEWCO"]
    # Others asking meanwhile queue nothing more, and pages see it on its way.
    with pytest.raises(PriceFetching):
        port.get_current_price("NEWCO", wait=0)
    assert isinstance(port.get_current_prices(["NEWCO"])["NEWCO"], PriceFetching)
    assert tickers == ["NEWCO"]

    said = port.fetch_requested("NEWCO")  # the worker's half

    assert said.startswith("NEWCO: ")
    assert fake_av.count(DAILY, "NEWCO") == 1
    point = port.get_current_price("NEWCO", wait=0)
    assert not point.is_stale and not point.pending
    assert cache.get(pending_key("NEWCO")) is None
    assert port.get_current_prices(["NEWCO"])["NEWCO"] == point


def test_a_stale_price_is_answered_at_once_marked_pending(queued, fake_av):
    port, tickers = queued
    store_bars("OLDCO", [(date(2023, 11, 10), "10.0000")], source=Source.ALPHA_VANTAGE)

    point = port.get_current_price("OLDCO", wait=0)

    assert point.price == Decimal("10.0000")
    assert point.is_stale and point.pending
    assert tickers == ["OLDCO"]
    batch = port.get_current_prices(["OLDCO"])["OLDCO"]
    assert isinstance(batch, PricePoint) and batch.pending
    port.fetch_requested("OLDCO")
    fresh = port.get_current_price("OLDCO", wait=0)
    assert not fresh.is_stale and not fresh.pending
    assert fresh.as_of.date() > date(2023, 11, 10)


def test_a_request_waits_for_an_answer_that_comes_within_the_budget(live, fake_av):
    """With the worker's half running as the request is queued (here: in the same thread, as
    Celery's eager mode does), the read answers the fetched price, not "fetching"."""
    point = live.get_current_price("FASTCO")
    assert not point.pending and not point.is_stale
    assert fake_av.count(DAILY, "FASTCO") == 1


def test_a_failed_fetch_with_nothing_stored_is_the_answer_for_a_minute(queued, fake_av):
    port, tickers = queued
    fake_av.outage()
    with pytest.raises(PriceFetching):
        port.get_current_price("DOWNCO", wait=0)
    port.fetch_requested("DOWNCO")
    calls = fake_av.count()
    assert calls == 2  # the call and its retry

    for _ in range(3):
        with pytest.raises(MarketDataUnavailable, match="HTTP 503") as caught:
            port.get_current_price("DOWNCO", wait=0)
        assert not isinstance(caught.value, PriceFetching)
    answer = port.get_current_prices(["DOWNCO"])["DOWNCO"]
    assert isinstance(answer, MarketDataUnavailable) and not isinstance(answer, PriceFetching)
    assert tickers == ["DOWNCO"]  # nobody queued it again
    assert fake_av.count() == calls


def test_a_failed_fetch_leaves_the_stored_price_for_a_minute(queued, fake_av):
    port, tickers = queued
    store_bars("LAGCO", [(date(2023, 11, 10), "10.0000")], source=Source.ALPHA_VANTAGE)
    fake_av.outage()
    port.get_current_price("LAGCO", wait=0)
    port.fetch_requested("LAGCO")

    point = port.get_current_price("LAGCO", wait=0)

    assert point.is_stale and not point.pending
    assert tickers == ["LAGCO"]


def test_an_unknown_ticker_found_by_the_worker_is_not_found_for_everyone(queued, fake_av):
    port, tickers = queued
    fake_av.unknown("NOSUCH")
    with pytest.raises(PriceFetching):
        port.get_current_price("NOSUCH", wait=0)
    port.fetch_requested("NOSUCH")
    with pytest.raises(TickerNotFound):
        port.get_current_price("NOSUCH", wait=0)
    assert isinstance(port.get_current_prices(["NOSUCH"])["NOSUCH"], TickerNotFound)
    assert fake_av.count() == 1


def test_a_broker_that_is_down_fails_the_request_at_once(live, fake_av):
    def broker_down(ticker: str) -> None:
        raise ConnectionError("broker unreachable")

    port = TieredMarketData(upstream=Upstream(client=live.upstream.client, enqueue=broker_down))
    with pytest.raises(MarketDataUnavailable, match="could not be requested"):
        port.get_current_price("NEWCO")
    store_bars("OLDCO", [(date(2023, 11, 10), "10.0000")])
    assert port.get_current_price("OLDCO").is_stale  # the stored price is the answer
    assert cache.get(pending_key("NEWCO")) is None  # the next read may try again
    assert fake_av.count() == 0
