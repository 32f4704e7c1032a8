"""Pages while a price is being fetched in the background: the stock page answers at once and
polls, an order waits at most the request budget and is refused with a clear message, the
trade preview polls until the price arrives; nothing is written meanwhile.

The broker is replaced by a list (what Celery would carry to a worker); the worker's half,
``fetch_requested``, runs when the test says.
"""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import date
from decimal import Decimal

import pytest

from marketdata.port import Source
from marketdata.tests.factories import store_bars
from marketdata.wiring import get_market_data, get_upstream

pytestmark = pytest.mark.django_db
BUDGET = 0.3


@pytest.fixture
def queued(live, settings, monkeypatch):
    """Live against the fake, with a short request budget and no worker: the queued tickers."""
    md = dataclasses.replace(settings.PAPERTRADE.market_data, request_budget_seconds=BUDGET)
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, market_data=md)
    tickers: list[str] = []
    monkeypatch.setattr(get_upstream(), "enqueue", tickers.append)
    return tickers


def worker_runs(ticker: str) -> None:
    get_market_data().fetch_requested(ticker)


def test_a_stock_page_for_a_new_ticker_answers_at_once_and_polls(auth_client, queued, fake_av):
    page = auth_client.get("/stocks/NEWCO/").content.decode()
    assert "Fetching the latest price of NEWCO" in page
    poll = re.search(r'hx-get="(/stocks/NEWCO/price-status/\?since=\d+)"', page)
    assert poll and 'hx-trigger="every 2s"' in page
    assert queued == ["NEWCO"] and fake_av.count() == 0

    status = auth_client.get(poll.group(1))
    assert status.status_code == 204  # still on its way: nothing to swap, keep polling
    assert fake_av.count() == 0 and queued == ["NEWCO"]  # polling never asks again

    worker_runs("NEWCO")
    status = auth_client.get(poll.group(1))
    assert status.status_code == 200 and status["HX-Refresh"] == "true"
    page = auth_client.get("/stocks/NEWCO/").content.decode()
    assert "Fetching" not in page and "stale" not in page
    assert 'class="price"' in page
    assert fake_av.count() == 1


def test_a_stale_stock_page_shows_the_stored_price_marked_fetching(auth_client, queued):
    store_bars("OLDCO", [(date(2023, 11, 10), "10.0000")], source=Source.ALPHA_VANTAGE)
    page = auth_client.get("/stocks/OLDCO/").content.decode()
    assert "$10.00" in page
    assert "badge stale" in page and "badge fetching" in page
    assert "price-status/?since=" in page
    assert queued == ["OLDCO"]


def test_a_failed_fetch_is_shown_once_it_is_over(auth_client, queued, fake_av):
    fake_av.outage()
    page = auth_client.get("/stocks/DOWNCO/").content.decode()
    poll = re.search(r'hx-get="(/stocks/DOWNCO/price-status/\?since=\d+)"', page).group(1)
    worker_runs("DOWNCO")
    assert auth_client.get(poll)["HX-Refresh"] == "true"
    page = auth_client.get("/stocks/DOWNCO/").content.decode()
    assert "HTTP 503" in page and "Fetching" not in page
    assert queued == ["DOWNCO"]


def test_an_order_waits_the_budget_then_says_the_price_is_on_its_way(
    auth_client, portfolio, queued, fake_av
):
    url = f"/portfolios/{portfolio.pk}/trade/"
    order = {"side": "BUY", "ticker": "NEWCO", "quantity": "2"}
    auth_client.get(f"/portfolios/{portfolio.pk}/")  # a warm process, as a running server's

    started = time.monotonic()
    response = auth_client.post(url, order, headers={"HX-Request": "true"})
    waited = time.monotonic() - started

    assert BUDGET <= waited < BUDGET + 0.5
    assert response.status_code == 422
    body = response.content.decode()
    assert "The price of NEWCO is being fetched; place the order again in a moment." in body
    assert 'hx-trigger="load delay:1s"' in body  # the preview asks for the price by itself
    assert portfolio.transactions.trades().count() == 0
    assert fake_av.count() == 0

    preview_url = f"/portfolios/{portfolio.pk}/trade/preview/"
    preview = auth_client.get(preview_url, {"ticker": "NEWCO", "quantity": "2"}).content.decode()
    assert "NEWCO is being fetched; it shows here in a moment" in preview
    assert 'hx-trigger="every 2s"' in preview

    worker_runs("NEWCO")
    preview = auth_client.get(preview_url, {"ticker": "NEWCO", "quantity": "2"}).content.decode()
    assert "Estimated total" in preview and "every 2s" not in preview
    response = auth_client.post(url, order, headers={"HX-Request": "true"})
    assert response.status_code == 200
    txn = portfolio.transactions.trades().get()
    assert txn.quantity == Decimal("2") and txn.price_source == Source.ALPHA_VANTAGE
    assert not txn.price_was_stale
    assert queued == ["NEWCO"] and fake_av.count() == 1


def test_an_order_never_fills_at_the_old_price_while_a_new_one_is_coming(
    auth_client, portfolio, queued
):
    store_bars("OLDCO", [(date(2023, 11, 10), "10.0000")], source=Source.ALPHA_VANTAGE)
    response = auth_client.post(
        f"/portfolios/{portfolio.pk}/trade/", {"side": "BUY", "ticker": "OLDCO", "quantity": "1"}
    )
    assert response.status_code == 422
    assert "A newer price of OLDCO is being fetched" in response.content.decode()
    assert portfolio.transactions.trades().count() == 0
