"""Value over time and its returns (PRODUCT §10.1), pinned on hand-computed cases."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketdata.price_cache import forget_current_prices
from marketdata.tests.factories import store_bars
from portfolios.performance import ValuePoint, returns, time_weighted, value_series, xirr
from portfolios.services import (
    portfolio_advance,
    portfolio_buy,
    portfolio_create,
    portfolio_deposit,
)

D = Decimal


def point(day: int, value: str, flow: str = "0") -> ValuePoint:
    return ValuePoint(date(2025, 8, day), D(value), D(0), D(flow))


# --- the formulas, by hand --------------------------------------------------------------------
def test_a_deposit_mid_range_is_not_a_return():
    # 1,000 grows 10 % (1,100); 900 is deposited (2,000 at the start of day 3); it grows 5 %.
    days = [point(1, "1000", "1000"), point(2, "1100"), point(3, "2100", "900")]
    twr = time_weighted(days, D(0))
    assert twr == D("1.1") * D("1.05") - 1  # 15.5 %, whatever was deposited
    found = returns(days, date(2025, 8, 1))
    assert found.time_weighted == D("15.50")
    assert found.change == D("200")  # 2,100 − 1,900 put in
    assert found.simple == D("10.53")  # 200 / 1,900


def test_a_range_starts_from_the_value_at_the_close_before_it():
    days = [point(1, "1000", "1000"), point(4, "1200"), point(5, "1320")]
    found = returns(days, date(2025, 8, 4))
    assert (found.base, found.final, found.deposits) == (D("1000"), D("1320"), D("0"))
    assert found.change == D("320") and found.time_weighted == D("32.00")


def test_xirr_matches_the_known_spreadsheet_case_to_a_millionth():
    flows = [
        (date(2008, 1, 1), D("-10000")),
        (date(2008, 3, 1), D("2750")),
        (date(2008, 10, 30), D("4250")),
        (date(2009, 2, 15), D("3250")),
        (date(2009, 4, 1), D("2750")),
    ]
    assert abs(xirr(flows) - D("0.373362535")) < D("0.000001")


def test_xirr_of_a_year_at_ten_percent_and_of_no_answer():
    assert abs(xirr([(date(2023, 1, 1), D(-100)), (date(2024, 1, 1), D(110))]) - D("0.1")) < D(
        "0.000001"
    )
    assert xirr([(date(2023, 1, 1), D(-100)), (date(2024, 1, 1), D(-5))]) is None


# --- the series, from the ledger and the stored closes ------------------------------------------
@pytest.fixture
def history(db):
    # Mon 4 … Fri 8 Aug 2025; AAA has no bar on Wednesday (carried, and marked).
    store_bars(
        "AAA", [(date(2025, 8, d), c) for d, c in [(4, "10"), (5, "11"), (7, "12"), (8, "13")]]
    )
    store_bars("BBB", [(date(2025, 8, d), "50") for d in (4, 5, 6, 7, 8)])
    forget_current_prices(["AAA", "BBB"])


@pytest.mark.django_db
def test_a_time_machine_series_values_each_session_at_its_closes(user, history):
    portfolio = portfolio_create(
        owner=user, name="TM", opening_deposit=D("1000"), starts_on=date(2025, 8, 4)
    )
    portfolio_buy(portfolio=portfolio, ticker="AAA", quantity=D("10"))  # 100 at Monday's close
    portfolio_advance(portfolio=portfolio, to=date(2025, 8, 6))
    portfolio_deposit(portfolio=portfolio, amount=D("500"))
    portfolio_advance(portfolio=portfolio, to=date(2025, 8, 8))

    series = value_series(portfolio)
    assert [(p.day.day, p.value, p.flow, p.carried) for p in series] == [
        (4, D("1000.00"), D("1000"), ()),
        (5, D("1010.00"), D("0"), ()),
        (6, D("1510.00"), D("500"), ("AAA",)),  # Tuesday's 11, carried
        (7, D("1520.00"), D("0"), ()),
        (8, D("1530.00"), D("0"), ()),
    ]
    whole = returns(series, date(2025, 8, 4))
    assert whole.change == D("30.00") and whole.deposits == D("1500")
    assert whole.time_weighted == D("2.34")  # 1.01 × (1510/1510) × (1520/1510) × (1530/1520) − 1


@pytest.mark.django_db
def test_the_series_costs_two_queries_whatever_the_tickers_and_is_cached(user, history):
    portfolio = portfolio_create(
        owner=user, name="TM", opening_deposit=D("5000"), starts_on=date(2025, 8, 4)
    )
    portfolio_buy(portfolio=portfolio, ticker="AAA", quantity=D("10"))
    portfolio_buy(portfolio=portfolio, ticker="BBB", quantity=D("10"))
    portfolio_advance(portfolio=portfolio, to=date(2025, 8, 8))
    with CaptureQueriesContext(connection) as cold:
        series = value_series(portfolio)
    queries = [q["sql"] for q in cold.captured_queries if "papertrade_cache" not in q["sql"]]
    assert len(queries) == 2, queries  # the ledger, and every ticker's closes
    assert series[-1].value == D("5000") - D("600") + D("130") + D("500")
    with CaptureQueriesContext(connection) as warm:
        assert value_series(portfolio) == series
    assert [q for q in warm.captured_queries if "papertrade_cache" not in q["sql"]] == []


@pytest.mark.django_db
def test_the_value_card_makes_the_same_queries_whatever_the_range_or_the_tickers(auth_client, user):
    days = [date(2025, 8, d) for d in (4, 5, 6, 7, 8)]
    names = [f"T{i}" for i in range(6)]
    for name in names:
        store_bars(name, [(d, "10.0000") for d in days])
    forget_current_prices(names)
    counts = {}
    for held in (1, 6):
        portfolio = portfolio_create(
            owner=user, name=f"P{held}", opening_deposit=D("1000"), starts_on=days[0]
        )
        for name in names[:held]:
            portfolio_buy(portfolio=portfolio, ticker=name, quantity=D("1"))
        portfolio_advance(portfolio=portfolio, to=days[-1])
        for chosen in ("1M", "ALL"):
            from django.core.cache import cache

            cache.clear()  # cold: the series is built, not read from the cache
            url = f"/portfolios/{portfolio.pk}/performance/?range={chosen}&benchmark=T0"
            with CaptureQueriesContext(connection) as captured:
                assert auth_client.get(url).status_code == 200
            counts[held, chosen] = len(
                [q for q in captured.captured_queries if "papertrade_cache" not in q["sql"]]
            )
    assert len(set(counts.values())) == 1, counts
