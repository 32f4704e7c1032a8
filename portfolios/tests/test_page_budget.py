"""The portfolio page's budget (PRODUCT §7): with 1, 10 or 50 holdings and 10,000 ledger rows, a
warm page (prices cached) costs at most 10 SQL queries and 2 cache round-trips, and the same
number whatever the holdings count; so does its polling partial. bench/portfolio_page.py times
the same pages; these tests keep the counts from regressing.

On the embedded default the cache is a database table: its queries are cache round-trips, not
page queries, so they are counted by the cache counter and left out of the query count. On
Redis (CI) the plain ``django_assert_max_num_queries`` holds as well.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketdata.testing.cache_calls import CacheCalls
from marketdata.tests.factories import store_bars
from portfolios.models import Holding, Portfolio, Transaction

pytestmark = pytest.mark.django_db

MAX_QUERIES = 10
MAX_CACHE_ROUND_TRIPS = 2
LEDGER_ROWS = 10_000
HOLDINGS = (1, 10, 50)
CACHE_TABLE = "papertrade_cache"  # settings.CACHES on the embedded default


def page_queries(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if CACHE_TABLE not in q["sql"]]


def tickers(count: int) -> list[str]:
    return [f"PB{i:02d}" for i in range(count)]


@pytest.fixture
def stored_prices(db):
    for ticker in tickers(max(HOLDINGS)):
        store_bars(ticker, [(date(2023, 11, 9), "100.0000"), (date(2023, 11, 10), "101.5000")])


def make_portfolio(owner, holdings: int) -> Portfolio:
    """A portfolio of ``holdings`` tickers with LEDGER_ROWS ledger rows that agree with it."""
    deposit = Decimal("10000000.00")
    start = datetime(2021, 11, 10, 15, tzinfo=UTC)
    portfolio = Portfolio.objects.create(
        owner=owner, name=f"P{holdings}", cash=deposit, net_contributions=deposit
    )
    rows = [
        Transaction(portfolio=portfolio, kind="DEPOSIT", cash_change=deposit, executed_at=start)
    ]
    held = {t: [Decimal(0), Decimal(0)] for t in tickers(holdings)}
    names = list(held)
    for i in range(1, LEDGER_ROWS):
        ticker = names[i % len(names)]
        price = Decimal(f"{50 + i % 97}.0000")
        total = Decimal("1.5") * price
        when = start + timedelta(hours=i)
        rows.append(
            Transaction(
                portfolio=portfolio,
                kind="BUY",
                ticker=ticker,
                quantity=Decimal("1.5000"),
                price=price,
                cash_change=-total,
                executed_at=when,
                price_source="import",
                price_as_of=when,
                price_was_stale=False,
            )
        )
        held[ticker][0] += Decimal("1.5")
        held[ticker][1] += total
    Transaction.objects.bulk_create(rows, batch_size=1000)
    Holding.objects.bulk_create(
        [
            Holding(portfolio=portfolio, ticker=t, quantity=q, cost_basis=c)
            for t, (q, c) in held.items()
        ]
    )
    portfolio.cash = deposit - sum(c for _, c in held.values())
    portfolio.save(update_fields=["cash"])
    return portfolio


@pytest.fixture
def portfolios(user, stored_prices) -> dict[int, Portfolio]:
    return {h: make_portfolio(user, h) for h in HOLDINGS}


def warm_cost(client, url: str) -> tuple[list[str], list[str], bytes]:
    """(page queries, cache calls, body) of a request made after one that warmed the cache."""
    assert client.get(url).status_code == 200
    with CacheCalls() as spy, CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return page_queries(captured), spy.calls, response.content


@pytest.mark.parametrize("suffix", ["", "live/"], ids=["page", "live-partial"])
def test_a_warm_portfolio_page_stays_within_its_budget_whatever_the_holdings(
    auth_client, portfolios, suffix
):
    costs = {}
    for holdings, portfolio in portfolios.items():
        queries, calls, body = warm_cost(auth_client, f"/portfolios/{portfolio.pk}/{suffix}")
        assert body.count(b"<tr data-ticker=") == holdings  # every holding is on the page
        assert len(queries) <= MAX_QUERIES, f"{holdings} holdings: {len(queries)} queries:\n" + (
            "\n".join(queries)
        )
        assert len(calls) <= MAX_CACHE_ROUND_TRIPS, f"{holdings} holdings: cache calls {calls}"
        costs[holdings] = (len(queries), len(calls))
    # Whatever the holdings count: 50 holdings cost what 1 does.
    assert len(set(costs.values())) == 1, costs


def test_an_older_page_of_a_long_history_costs_the_same(auth_client, portfolios):
    portfolio = portfolios[50]
    first, _, _ = warm_cost(auth_client, f"/portfolios/{portfolio.pk}/")
    deep, calls, body = warm_cost(auth_client, f"/portfolios/{portfolio.pk}/?page=300")
    assert b"Page 300 of 400" in body
    assert len(deep) == len(first) <= MAX_QUERIES
    assert len(calls) <= MAX_CACHE_ROUND_TRIPS


@pytest.mark.redis
@pytest.mark.parametrize("holdings", HOLDINGS)
def test_on_redis_the_warm_page_needs_at_most_ten_queries(
    auth_client, portfolios, holdings, django_assert_max_num_queries
):
    url = f"/portfolios/{portfolios[holdings].pk}/"
    assert auth_client.get(url).status_code == 200  # warm
    with django_assert_max_num_queries(MAX_QUERIES):
        assert auth_client.get(url).status_code == 200
