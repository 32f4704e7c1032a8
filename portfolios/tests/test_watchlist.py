"""A watchlist of one's own (PRODUCT §11.3): added from a stock page or search results, shown
with price, as-of, day change and three months of closes from stored data only, polled, and
joined to the scheduled refresh after held tickers."""

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from marketdata.plan import refresh_plan
from marketdata.port import session_date
from marketdata.price_cache import forget_current_prices
from marketdata.tests.factories import store_bars, store_series
from portfolios.models import Holding, WatchedTicker

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(db):
    end = session_date(timezone.now())
    store_series("WTCH", end, [f"{100 + i}.0000" for i in range(60)])
    forget_current_prices(["WTCH"])


def test_added_from_the_stock_page_it_shows_with_price_change_and_a_line(auth_client, stored):
    page = auth_client.get("/stocks/WTCH/").content.decode()
    assert "Add to watchlist" in page
    response = auth_client.post("/watchlist/add/", {"ticker": "WTCH", "next": "/stocks/WTCH/"})
    assert response.status_code == 302 and response["Location"] == "/stocks/WTCH/"
    assert "On your watchlist · Remove" in auth_client.get("/stocks/WTCH/").content.decode()
    body = auth_client.get("/watchlist/").content.decode()
    row = re.search(r'<tr data-ticker="WTCH">.*?</tr>', body, re.S).group(0)
    assert "$159.00" in row and "+$1.00" in row and "+0.63%" in row
    assert '<svg class="sparkline"' in row and "from $100.00 to $159.00" in row


def test_polling_reads_the_cache_and_spends_no_quota(auth_client, live, fake_av, user, stored):
    WatchedTicker.objects.create(owner=user, ticker="WTCH")
    WatchedTicker.objects.create(owner=user, ticker="NOPRICE")
    response = auth_client.get(
        "/watchlist/", headers={"HX-Request": "true", "HX-Target": "watchlist-live"}
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="watchlist-live"') and "<html" not in body
    assert 'hx-trigger="every' in body and "unavailable" in body
    assert fake_av.count() == 0


def test_remove_and_bad_input(auth_client, user, stored):
    WatchedTicker.objects.create(owner=user, ticker="WTCH")
    assert auth_client.post("/watchlist/WTCH/remove/").status_code == 302
    assert not WatchedTicker.objects.exists()
    auth_client.post("/watchlist/add/", {"ticker": "<script>"})
    assert not WatchedTicker.objects.exists()
    assert (
        auth_client.post("/watchlist/add/", {"ticker": "wtch", "next": "https://evil.example/"})[
            "Location"
        ]
        == "/watchlist/"
    )
    assert WatchedTicker.objects.get().ticker == "WTCH"


def test_search_results_offer_to_add(auth_client, stored):
    store_bars("WTCX", [(date(2025, 1, 2), "5.0000")])
    body = auth_client.get("/stocks/?q=WTC").content.decode()
    assert 'aria-label="Add WTCH to watchlist"' in body
    assert 'aria-label="Add WTCX to watchlist"' in body


def test_watched_tickers_join_the_refresh_plan_after_held_ones(settings, portfolio, user, db):
    import dataclasses

    refresh = dataclasses.replace(settings.PAPERTRADE.refresh, watchlist=("CONF",))
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, refresh=refresh)
    old = date.today() - timedelta(days=30)
    for ticker in ("HELD", "MINE", "CONF", "BACK"):
        store_bars(ticker, [(old, "1.0000")])
    Holding.objects.create(
        portfolio=portfolio, ticker="HELD", quantity=Decimal(1), cost_basis=Decimal(1)
    )
    WatchedTicker.objects.create(owner=user, ticker="MINE")
    plan = refresh_plan()
    assert [(t.ticker, t.reason) for t in plan.tickers] == [
        ("HELD", "held"),
        ("MINE", "watched"),
        ("CONF", "watchlist"),
        ("BACK", "backfill"),
    ]
