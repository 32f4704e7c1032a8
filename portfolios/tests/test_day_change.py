"""The day change ("Today") of a position: what it gained since the previous close, counting
shares bought today from their fill, not from a close their owner never had."""

from datetime import date
from decimal import Decimal

import pytest

from marketdata.price_cache import forget_current_prices
from marketdata.tests.factories import store_bars
from marketdata.tiers import TieredMarketData
from portfolios.selectors import portfolio_summaries, portfolio_summary
from portfolios.services import portfolio_buy, portfolio_create, portfolio_sell

pytestmark = pytest.mark.django_db

PORT = TieredMarketData()
THU, FRI = date(2023, 11, 9), date(2023, 11, 10)  # AAPL closed at 182.41, then 186.40


def buy(portfolio, quantity: str):
    return portfolio_buy(
        portfolio=portfolio, ticker="AAPL", quantity=Decimal(quantity), prices=PORT
    )


def sell(portfolio, quantity: str):
    return portfolio_sell(
        portfolio=portfolio, ticker="AAPL", quantity=Decimal(quantity), prices=PORT
    )


def friday_closes() -> None:
    """Friday's bar arrives after trades made at Thursday's close."""
    store_bars("AAPL", [(FRI, "186.4000")])
    forget_current_prices(["AAPL"])


def aapl_row(portfolio):
    [row] = portfolio_summary(portfolio, prices=PORT).holdings
    return row


def test_shares_bought_at_todays_price_have_gained_nothing_today(portfolio, aapl):
    buy(portfolio, "10")  # at Friday's close, the latest price

    row = aapl_row(portfolio)

    assert (row.day_change, row.unrealized_gain) == (Decimal("0.00"), Decimal("0.00"))
    assert row.day_change_pct == Decimal("0.00")


def test_shares_held_since_the_previous_close_gain_its_change(portfolio):
    store_bars("AAPL", [(THU, "182.4100")])
    buy(portfolio, "10")  # at Thursday's close
    friday_closes()

    row = aapl_row(portfolio)

    assert row.day_change == Decimal("39.90")  # 10 × (186.40 − 182.41)
    assert row.day_change_pct == Decimal("2.19")


def test_todays_buys_and_sells_count_from_their_fills(portfolio):
    store_bars("AAPL", [(THU, "182.4100")])
    buy(portfolio, "10")
    friday_closes()
    buy(portfolio, "5")  # today, at 186.40: no gain today
    sell(portfolio, "4")  # today, at 186.40: what those 4 gained since Thursday is realized

    row = aapl_row(portfolio)

    assert row.quantity == Decimal("11")
    assert row.day_change == Decimal("39.90")  # still the 10 held at Thursday's close
    # held at the close 10 × 182.41 + bought 5 × 186.40 = 2,756.10 to start the day from
    assert row.day_change_pct == Decimal("1.45")


def test_the_portfolio_total_sums_its_positions_and_ignores_other_portfolios(user, portfolio):
    store_bars("AAPL", [(THU, "182.4100")])
    buy(portfolio, "10")
    other = portfolio_create(owner=user, name="Other", opening_deposit=Decimal("10000.00"))
    friday_closes()
    buy(other, "10")  # today, in another portfolio

    mine, theirs = portfolio_summaries([portfolio, other], prices=PORT)

    assert (mine.day_change, theirs.day_change) == (Decimal("39.90"), Decimal("0.00"))


def test_the_page_shows_the_days_change_of_todays_buy_as_nothing(auth_client, portfolio, aapl):
    buy(portfolio, "10")

    page = auth_client.get(f"/portfolios/{portfolio.pk}/").content.decode()

    # The AAPL row: unrealized gain and day change both nothing (before: "$39.90 (+2.19%)").
    assert page.count('<td class="num ">$0.00 (+0.00%)</td>') == 2
    assert "$39.90" not in page
