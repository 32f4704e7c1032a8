"""The portfolio pages with a live provider (a local fake Alpha Vantage)."""

from datetime import date
from decimal import Decimal

import pytest

from marketdata.port import Source
from marketdata.tests.factories import store_bars
from marketdata.tiers import TieredMarketData
from portfolios.services import portfolio_buy

pytestmark = pytest.mark.django_db


@pytest.fixture
def stale_nvda(db):
    return store_bars("NVDA", [(date(2023, 11, 9), "469.5000"), (date(2023, 11, 10), "483.3500")])


def test_a_trade_fills_at_the_freshest_price_and_records_it(
    auth_client, portfolio, stale_nvda, live, fake_av
):
    fresh = fake_av.default_daily("NVDA")["Time Series (Daily)"]
    latest_day = max(fresh)
    auth_client.post(
        f"/portfolios/{portfolio.pk}/trade/", {"side": "BUY", "ticker": "NVDA", "quantity": "1"}
    )
    txn = portfolio.transactions.trades().get()
    assert fake_av.count("TIME_SERIES_DAILY", "NVDA") == 1
    assert txn.price == Decimal(fresh[latest_day]["4. close"])
    assert txn.price_source == Source.ALPHA_VANTAGE
    assert txn.price_was_stale is False
    assert txn.price_as_of.date().isoformat() == latest_day


def test_polling_and_page_views_spend_no_quota(auth_client, portfolio, stale_nvda, live, fake_av):
    # A holding whose stored price is stale (bought from the stored tier alone).
    portfolio_buy(
        portfolio=portfolio, ticker="NVDA", quantity=Decimal("1"), prices=TieredMarketData()
    )
    page = auth_client.get(f"/portfolios/{portfolio.pk}/").content.decode()
    assert "stale" in page
    for _ in range(3):
        assert auth_client.get(f"/portfolios/{portfolio.pk}/live/").status_code == 200
    assert auth_client.get(f"/portfolios/{portfolio.pk}/").status_code == 200
    assert auth_client.get("/").status_code == 200
    assert fake_av.count() == 0


def test_the_preview_spends_no_quota(auth_client, portfolio, live, fake_av):
    body = auth_client.get(
        f"/portfolios/{portfolio.pk}/trade/preview/", {"ticker": "NEWCO", "quantity": "1"}
    ).content.decode()
    assert "No price is stored for NEWCO yet" in body
    assert fake_av.count() == 0


def test_a_throttled_provider_leaves_every_page_working_with_a_warning(
    auth_client, portfolio, stale_nvda, live, fake_av
):
    portfolio_buy(portfolio=portfolio, ticker="NVDA", quantity=Decimal("2"))  # the fill fetches
    fake_av.throttle_after(0)
    from django.core.cache import cache

    cache.clear()
    # The stored bar is now fresh (the fill fetched it); make the provider needed again.
    response = auth_client.get("/stocks/AMD/")
    assert response.status_code in (200, 404)
    for url in ("/", f"/portfolios/{portfolio.pk}/", f"/portfolios/{portfolio.pk}/live/"):
        response = auth_client.get(url)
        assert response.status_code == 200, url
    body = auth_client.get(f"/portfolios/{portfolio.pk}/").content.decode()
    assert "Live prices are paused" in body
    response = auth_client.post(
        f"/portfolios/{portfolio.pk}/trade/", {"side": "BUY", "ticker": "AMD", "quantity": "1"}
    )
    assert response.status_code == 422
    assert "No price for AMD right now" in response.content.decode()
    assert portfolio.transactions.trades().count() == 1
