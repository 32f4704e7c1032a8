"""Database round trips of the hot paths (issue: a latency of 500 ms on PostgreSQL must not make
a page take 10 s). Each query is a round trip; a reused connection adds one for Django's health
check, a write two for BEGIN and COMMIT. tests/faults/test_database_partition.py times the same
pages through a proxy that delays every reply.

- signed-in page: session, user, then the page's own queries;
- the ledger page: its rows carry their count (``COUNT(*) OVER ()``), no separate COUNT;
- ``/healthz``: no session or user lookup, even with a session cookie
  (``papertrade.middleware.LoginRequiredMiddleware`` asks the view first).
"""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portfolios.services import portfolio_buy

pytestmark = pytest.mark.django_db

CACHE_TABLE = "papertrade_cache"  # the embedded default's cache: cache calls, not page queries


def queries(client, method: str, path: str, data=None) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = getattr(client, method)(path, data) if data else getattr(client, method)(path)
    assert response.status_code in (200, 302), (path, response.status_code)
    return [q["sql"] for q in captured.captured_queries if CACHE_TABLE not in q["sql"]]


@pytest.fixture
def holding(portfolio, ibm):
    portfolio_buy(portfolio=portfolio, ticker="IBM", quantity=Decimal("2"))
    return portfolio


def test_the_hot_paths_make_the_round_trips_they_need_and_no_more(auth_client, holding):
    pk = holding.pk
    auth_client.get(f"/portfolios/{pk}/")  # warm the price cache
    page = queries(auth_client, "get", f"/portfolios/{pk}/")
    # session, user, portfolio, holdings, today's trades, ledger (no orders ever: none read)
    assert len(page) == 6, page
    assert not any("COUNT(*) AS" in q for q in page)  # the ledger page counts in its own query
    live = queries(auth_client, "get", f"/portfolios/{pk}/live/")
    assert len(live) == 5, live  # the page less its ledger
    buy = {"side": "BUY", "ticker": "IBM", "quantity": "1"}
    trade = queries(auth_client, "post", f"/portfolios/{pk}/trade/", buy)
    assert len(trade) <= 12, trade  # the write (with the reserves under the lock) and the page
    assert queries(auth_client, "get", "/healthz") == []  # its own check runs in a thread
    # A portfolio that has placed orders reads them too, open and recent, in one query.
    order = {**buy, "order_type": "LIMIT", "limit_price": "1.00", "time_in_force": "GTC"}
    auth_client.post(f"/portfolios/{pk}/trade/", order)
    page = queries(auth_client, "get", f"/portfolios/{pk}/")
    assert len(page) == 7, page
    assert sum("portfolios_order" in q for q in page) == 1


def test_a_page_past_the_end_of_the_ledger_still_shows_the_last_page(auth_client, holding):
    response = auth_client.get(f"/portfolios/{holding.pk}/?page=99")
    assert response.status_code == 200
    ledger = response.context["transactions"]
    assert (ledger.number, ledger.paginator.count) == (1, 2)  # the deposit and the buy
    assert [t.kind for t in ledger] == ["BUY", "DEPOSIT"]
