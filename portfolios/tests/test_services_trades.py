"""Buys and sells: market orders filled server-side at the price port's price (PRODUCT §2.5-§2.7).

Every refusal is checked twice: the message says what is wrong, and nothing was written (the
ledger, the cash, the running totals and the holdings re-read from the database are as they were).
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from marketdata.port import MarketDataUnavailable, Source, TickerNotFound, close_of
from marketdata.price_cache import forget_current_prices
from marketdata.tests.factories import store_bars
from marketdata.tiers import TieredMarketData
from portfolios.exceptions import (
    BalanceLimitExceeded,
    InsufficientFunds,
    InsufficientShares,
    InvalidQuantity,
    InvalidTicker,
    PriceUnavailable,
)
from portfolios.models import Holding, Portfolio, Transaction
from portfolios.money import MAX_CASH, MAX_QUANTITY
from portfolios.services import (
    ledger_differences,
    portfolio_buy,
    portfolio_deposit,
    portfolio_sell,
    portfolio_withdraw,
    trade_quote,
)

FRIDAY = date(2023, 11, 10)  # the last session of the demo data (see the aapl fixture)
AAPL_CLOSE = Decimal("186.4000")


def ledger_snapshot(portfolio: Portfolio) -> tuple:
    """What the database holds for ``portfolio``: re-read, never the in-memory copy."""
    portfolio.refresh_from_db()
    return (
        list(Transaction.objects.filter(portfolio=portfolio).values_list("pk", flat=True)),
        portfolio.cash,
        portfolio.net_contributions,
        portfolio.realized_gain,
        list(
            Holding.objects.filter(portfolio=portfolio).values_list(
                "ticker", "quantity", "cost_basis"
            )
        ),
    )


def holding(portfolio: Portfolio, ticker: str) -> Holding | None:
    return Holding.objects.filter(portfolio=portfolio, ticker=ticker).first()


def silent_port():
    """A price port that must not be asked: refusals that need no price spend no quota."""
    port = mock.create_autospec(TieredMarketData, instance=True)
    port.get_current_price.side_effect = AssertionError("the price port was asked")
    return port


def reprice(ticker: str, day: date, close: str) -> None:
    """A newer close arrives, and the cached current price is dropped."""
    store_bars(ticker, [(day, close)])
    forget_current_prices([ticker])


class RacingPort:
    """The stored prices, with ``meanwhile`` run (once) while the price is being looked up: what
    another request does between this trade's checks and its lock."""

    def __init__(self, meanwhile) -> None:
        self.stored = TieredMarketData()
        self.meanwhile = meanwhile

    def get_current_price(self, ticker: str):
        point = self.stored.get_current_price(ticker)
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return point


BAD_QUANTITIES = [
    pytest.param(Decimal("0"), "greater than zero", id="zero"),
    pytest.param(Decimal("-1"), "greater than zero", id="negative"),
    pytest.param(Decimal("NaN"), "must be a number", id="nan"),
    pytest.param(Decimal("sNaN"), "must be a number", id="snan"),
    pytest.param(Decimal("Infinity"), "must be a number", id="infinity"),
    pytest.param(Decimal("0.00001"), "at most 4 decimal places", id="five-places"),
    pytest.param(Decimal("1E-5"), "at most 4 decimal places", id="exponent-fraction"),
    pytest.param(MAX_QUANTITY + Decimal("0.0001"), "at most 1,000,000,000", id="over-max"),
    pytest.param(Decimal("1E+10"), "at most 1,000,000,000", id="exponent-over-max"),
    pytest.param(1.5, "must be a number", id="float"),
    pytest.param("1", "must be a number", id="str"),
    pytest.param(1, "must be a number", id="int"),
    pytest.param(None, "must be a number", id="none"),
]

BAD_TICKERS = [
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("AAPLAAPLAAP", id="eleven-chars"),
    pytest.param("ÄAPL", id="unicode-letter"),
    pytest.param("ＡＡＰＬ", id="full-width"),
    pytest.param("AA PL", id="inner-space"),
    pytest.param("<script>", id="markup"),
    pytest.param("A;DROP", id="semicolon"),
    pytest.param("AAPL\x00", id="nul"),
    pytest.param(".AAPL", id="leading-dot"),
    pytest.param("-A", id="leading-dash"),
    pytest.param(None, id="none"),
    pytest.param(123, id="int"),
]


# --- buying ----------------------------------------------------------------------------------
def test_it_fills_a_buy_at_the_stored_close_and_records_where_the_price_came_from(portfolio, aapl):
    before = timezone.now()

    row = portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))

    row.refresh_from_db()
    assert row.kind == Transaction.Kind.BUY
    assert (row.ticker, row.quantity, row.price) == ("AAPL", Decimal("10.0000"), AAPL_CLOSE)
    assert row.cash_change == Decimal("-1864.00")
    assert row.total == Decimal("1864.00")
    assert row.price_source == Source.IMPORT
    assert row.price_as_of == close_of(FRIDAY)
    assert row.price_was_stale is False  # offline nothing newer can come: a demo close, not stale
    assert row.realized_gain is None
    assert before <= row.executed_at <= timezone.now()
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("8136.00")
    assert portfolio.net_contributions == Decimal("10000.00")
    assert holding(portfolio, "AAPL").quantity == Decimal("10.0000")
    assert holding(portfolio, "AAPL").cost_basis == Decimal("1864.00")
    assert holding(portfolio, "AAPL").average_cost == AAPL_CLOSE
    assert ledger_differences(portfolio=portfolio) == []


def test_it_records_a_fresh_price_as_not_stale(portfolio, aapl):
    friday_evening = datetime(2023, 11, 10, 23, 0, tzinfo=UTC)  # 18:00 in New York
    prices = TieredMarketData(clock=lambda: friday_evening)

    row = portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("1"), prices=prices)

    row.refresh_from_db()
    assert row.price_was_stale is False
    assert row.price_as_of == close_of(FRIDAY)


def test_it_upper_cases_the_ticker_it_is_given(portfolio, aapl):
    row = portfolio_buy(portfolio=portfolio, ticker=" aapl ", quantity=Decimal("1"))

    assert row.ticker == "AAPL"
    assert holding(portfolio, "AAPL").quantity == Decimal("1")
    assert not Holding.objects.exclude(ticker="AAPL").exists()


def test_it_lets_the_owner_spend_exactly_all_their_cash(portfolio, aapl):
    portfolio_withdraw(portfolio=portfolio, amount=Decimal("8136.00"))  # leaves $1,864.00

    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))

    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("0.00")
    assert ledger_differences(portfolio=portfolio) == []


def test_it_refuses_a_buy_over_cash_saying_what_is_available_required_and_short(portfolio, aapl):
    before = ledger_snapshot(portfolio)

    with pytest.raises(InsufficientFunds) as caught:
        portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("54"))

    error = caught.value
    assert (error.available, error.required, error.shortfall) == (
        Decimal("10000.00"),
        Decimal("10065.60"),
        Decimal("65.60"),
    )
    assert error.message == (
        "Not enough cash: $10,000.00 available, $10,065.60 required, $65.60 short."
    )
    assert error.field == "quantity"
    assert ledger_snapshot(portfolio) == before


def test_it_refuses_a_buy_over_cash_by_a_single_cent(portfolio, aapl):
    portfolio_withdraw(portfolio=portfolio, amount=Decimal("8136.01"))  # leaves $1,863.99
    before = ledger_snapshot(portfolio)

    with pytest.raises(InsufficientFunds) as caught:
        portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))

    assert "$1,863.99 available, $1,864.00 required, $0.01 short" in caught.value.message
    assert ledger_snapshot(portfolio) == before


def test_it_judges_a_buy_against_the_cash_left_when_the_lock_is_taken(portfolio, aapl):
    """Another request withdraws most of the cash while this buy is being priced: the buy must
    be judged against what is left, not what the caller's copy says."""
    racing = RacingPort(
        lambda: portfolio_withdraw(
            portfolio=Portfolio.objects.get(pk=portfolio.pk), amount=Decimal("9000.00")
        )
    )

    with pytest.raises(InsufficientFunds) as caught:
        portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"), prices=racing)

    assert caught.value.available == Decimal("1000.00")
    assert caught.value.required == Decimal("1864.00")
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("1000.00")
    assert not portfolio.transactions.trades().exists()
    assert not Holding.objects.exists()


@pytest.mark.parametrize(("quantity", "says"), BAD_QUANTITIES)
def test_it_refuses_a_buy_of_a_quantity_that_is_not_a_positive_number_in_range(
    portfolio, aapl, quantity, says
):
    before = ledger_snapshot(portfolio)

    with pytest.raises(InvalidQuantity) as caught:
        portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=quantity, prices=silent_port())

    assert says in caught.value.message
    assert caught.value.field == "quantity"
    assert ledger_snapshot(portfolio) == before


def test_it_refuses_a_buy_that_comes_to_less_than_a_cent(portfolio):
    # 0.0001 x $50 = $0.005, which rounds half-even to $0.00 (half-up would charge a cent).
    store_bars("FIFTY", [(FRIDAY, "50.0000")])
    before = ledger_snapshot(portfolio)

    with pytest.raises(InvalidQuantity) as caught:
        portfolio_buy(portfolio=portfolio, ticker="FIFTY", quantity=Decimal("0.0001"))

    assert caught.value.message == (
        "0.0001 FIFTY at $50.00 comes to less than a cent; trade a larger quantity."
    )
    assert ledger_snapshot(portfolio) == before


def test_it_refuses_a_single_trade_over_a_billion_dollars(portfolio, aapl):
    before = ledger_snapshot(portfolio)

    with pytest.raises(InvalidQuantity) as caught:
        portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10000000"))

    assert "at most $1,000,000,000.00" in caught.value.message
    assert ledger_snapshot(portfolio) == before


def test_it_refuses_a_buy_that_would_hold_more_than_a_billion_shares(portfolio):
    store_bars("PENNY", [(FRIDAY, "0.0100")])
    portfolio_deposit(portfolio=portfolio, amount=Decimal("10000000.00"))
    portfolio_buy(portfolio=portfolio, ticker="PENNY", quantity=MAX_QUANTITY)
    before = ledger_snapshot(portfolio)

    with pytest.raises(InvalidQuantity) as caught:
        portfolio_buy(portfolio=portfolio, ticker="PENNY", quantity=Decimal("1"))

    assert "A holding may be at most 1,000,000,000 shares" in caught.value.message
    assert ledger_snapshot(portfolio) == before  # the ledger row was rolled back too


def test_it_rounds_a_buys_cost_half_to_even(portfolio):
    # 2.5 x $10.01 = $25.025: half-even charges $25.02 where half-up would charge $25.03.
    store_bars("HALF", [(FRIDAY, "10.0100")])

    row = portfolio_buy(portfolio=portfolio, ticker="HALF", quantity=Decimal("2.5"))

    assert row.cash_change == Decimal("-25.02")
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("9974.98")
    assert holding(portfolio, "HALF").cost_basis == Decimal("25.02")


def test_it_rounds_a_sells_proceeds_half_to_even(portfolio):
    store_bars("HALF", [(FRIDAY, "10.0100")])
    portfolio_buy(portfolio=portfolio, ticker="HALF", quantity=Decimal("5"))  # $50.05

    row = portfolio_sell(portfolio=portfolio, ticker="HALF", quantity=Decimal("2.5"))

    assert row.cash_change == Decimal("25.02")  # $25.025, half-even
    assert row.realized_gain == Decimal("0.00")  # cost sold: $50.05 / 2 = $25.025 -> $25.02
    assert holding(portfolio, "HALF").cost_basis == Decimal("25.03")
    assert ledger_differences(portfolio=Portfolio.objects.get(pk=portfolio.pk)) == []


# --- tickers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("trade", [portfolio_buy, portfolio_sell], ids=["buy", "sell"])
@pytest.mark.parametrize("ticker", BAD_TICKERS)
def test_it_refuses_a_malformed_ticker_without_asking_for_a_price(portfolio, trade, ticker):
    before = ledger_snapshot(portfolio)
    port = silent_port()

    with pytest.raises(InvalidTicker) as caught:
        trade(portfolio=portfolio, ticker=ticker, quantity=Decimal("1"), prices=port)

    assert caught.value.message.startswith(("Enter a ticker", "A ticker"))
    assert caught.value.field == "ticker"
    port.get_current_price.assert_not_called()
    assert ledger_snapshot(portfolio) == before


def test_it_refuses_a_ticker_that_becomes_ascii_only_once_upper_cased(portfolio, ibm):
    before = ledger_snapshot(portfolio)

    with pytest.raises(InvalidTicker):
        portfolio_buy(portfolio=portfolio, ticker="ıbm", quantity=Decimal("1"))  # dotless ı

    assert ledger_snapshot(portfolio) == before


def test_it_refuses_a_ticker_without_prices_offline_without_calling_it_unknown(portfolio, aapl):
    before = ledger_snapshot(portfolio)

    with pytest.raises(PriceUnavailable) as caught:
        portfolio_buy(portfolio=portfolio, ticker="bac", quantity=Decimal("1"))

    # Offline nobody can say BAC is no ticker: only that no price of it is to be had.
    assert caught.value.message == (
        "No price is available for BAC right now: none is stored, and without an API key none "
        "can be fetched."
    )
    assert ledger_snapshot(portfolio) == before


def test_it_asks_for_an_unknown_tickers_price_only_once(portfolio):
    port = mock.create_autospec(TieredMarketData, instance=True)
    port.get_current_price.side_effect = TickerNotFound("ZZZZ")

    with pytest.raises(InvalidTicker):
        portfolio_buy(portfolio=portfolio, ticker="ZZZZ", quantity=Decimal("1"), prices=port)

    port.get_current_price.assert_called_once_with("ZZZZ")


def test_it_refuses_a_trade_when_no_price_can_be_had(portfolio, aapl):
    port = mock.create_autospec(TieredMarketData, instance=True)
    port.get_current_price.side_effect = MarketDataUnavailable("the provider is down")
    before = ledger_snapshot(portfolio)

    with pytest.raises(PriceUnavailable) as caught:
        portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("1"), prices=port)

    assert caught.value.message == "No price for AAPL right now: the provider is down"
    assert ledger_snapshot(portfolio) == before


def test_it_quotes_a_trade_at_the_server_price_without_writing(portfolio, aapl):
    before = ledger_snapshot(portfolio)

    quote = trade_quote(ticker="aapl", quantity=Decimal("3"))

    assert (quote.ticker, quote.quantity, quote.total) == ("AAPL", Decimal("3"), Decimal("559.20"))
    assert quote.price.price == AAPL_CLOSE
    assert quote.price.source == Source.IMPORT
    assert ledger_snapshot(portfolio) == before


# --- selling ---------------------------------------------------------------------------------
def test_it_sells_part_of_a_holding_at_the_stored_close(portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))

    row = portfolio_sell(portfolio=portfolio, ticker="aapl", quantity=Decimal("4"))

    row.refresh_from_db()
    assert row.kind == Transaction.Kind.SELL
    assert (row.ticker, row.quantity, row.price) == ("AAPL", Decimal("4"), AAPL_CLOSE)
    assert row.cash_change == Decimal("745.60")
    assert row.realized_gain == Decimal("0.00")
    assert (row.price_source, row.price_as_of, row.price_was_stale) == (
        Source.IMPORT,
        close_of(FRIDAY),
        False,  # offline: a demo close
    )
    left = holding(portfolio, "AAPL")
    assert left.quantity == Decimal("6")
    assert left.cost_basis == Decimal("1118.40")
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("8881.60")
    assert ledger_differences(portfolio=portfolio) == []


def test_a_position_sold_to_zero_leaves_the_holdings_table(portfolio, aapl, ibm):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("2.5"))
    portfolio_buy(portfolio=portfolio, ticker="IBM", quantity=Decimal("1"))

    portfolio_sell(portfolio=portfolio, ticker="AAPL", quantity=Decimal("2.5"))

    assert holding(portfolio, "AAPL") is None
    assert holding(portfolio, "IBM").quantity == Decimal("1")
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("10000.00") - Decimal("149.02")
    assert ledger_differences(portfolio=portfolio) == []


def test_it_refuses_a_sell_over_the_held_quantity(portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))
    before = ledger_snapshot(portfolio)

    with pytest.raises(InsufficientShares) as caught:
        portfolio_sell(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10.0001"))

    error = caught.value
    assert (error.held, error.requested, error.shortfall) == (
        Decimal("10"),
        Decimal("10.0001"),
        Decimal("0.0001"),
    )
    assert error.message == "Not enough AAPL shares: 10 held, 10.0001 to sell, 0.0001 short."
    assert error.field == "quantity"
    assert ledger_snapshot(portfolio) == before


def test_it_refuses_a_sell_of_a_ticker_not_held_without_asking_for_a_price(portfolio, ibm):
    port = silent_port()
    before = ledger_snapshot(portfolio)

    with pytest.raises(InsufficientShares) as caught:
        portfolio_sell(portfolio=portfolio, ticker="ibm", quantity=Decimal("1"), prices=port)

    assert caught.value.message == "Not enough IBM shares: 0 held, 1 to sell, 1 short."
    port.get_current_price.assert_not_called()
    assert ledger_snapshot(portfolio) == before


def test_it_refuses_a_sell_of_another_portfolios_shares(portfolio, aapl, user):
    from portfolios.services import portfolio_create

    other = portfolio_create(owner=user, name="Other", opening_deposit=Decimal("1000.00"))
    portfolio_buy(portfolio=other, ticker="AAPL", quantity=Decimal("5"))
    before = ledger_snapshot(portfolio)

    with pytest.raises(InsufficientShares):
        portfolio_sell(portfolio=portfolio, ticker="AAPL", quantity=Decimal("1"))

    assert ledger_snapshot(portfolio) == before
    assert holding(other, "AAPL").quantity == Decimal("5")


def test_it_judges_a_sell_against_the_shares_left_when_the_lock_is_taken(portfolio, aapl):
    """Another request sells the shares while this sell is being priced (after its early check
    passed): the check under the lock must refuse it."""
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))
    racing = RacingPort(
        lambda: portfolio_sell(
            portfolio=Portfolio.objects.get(pk=portfolio.pk), ticker="AAPL", quantity=Decimal("7")
        )
    )

    with pytest.raises(InsufficientShares) as caught:
        portfolio_sell(portfolio=portfolio, ticker="AAPL", quantity=Decimal("5"), prices=racing)

    assert caught.value.message == "Not enough AAPL shares: 3 held, 5 to sell, 2 short."
    assert portfolio.transactions.filter(kind=Transaction.Kind.SELL).count() == 1
    assert holding(portfolio, "AAPL").quantity == Decimal("3")
    assert ledger_differences(portfolio=Portfolio.objects.get(pk=portfolio.pk)) == []


def test_it_refuses_a_sell_when_the_shares_are_all_gone_by_the_lock(portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))
    racing = RacingPort(
        lambda: portfolio_sell(
            portfolio=Portfolio.objects.get(pk=portfolio.pk), ticker="AAPL", quantity=Decimal("10")
        )
    )

    with pytest.raises(InsufficientShares) as caught:
        portfolio_sell(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"), prices=racing)

    assert "0 held, 10 to sell, 10 short" in caught.value.message
    assert holding(portfolio, "AAPL") is None
    assert portfolio.transactions.filter(kind=Transaction.Kind.SELL).count() == 1


@pytest.mark.parametrize(("quantity", "says"), BAD_QUANTITIES)
def test_it_refuses_a_sell_of_a_quantity_that_is_not_a_positive_number_in_range(
    portfolio, aapl, quantity, says
):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))
    before = ledger_snapshot(portfolio)

    with pytest.raises(InvalidQuantity) as caught:
        portfolio_sell(portfolio=portfolio, ticker="AAPL", quantity=quantity, prices=silent_port())

    assert says in caught.value.message
    assert ledger_snapshot(portfolio) == before


def test_it_refuses_a_sell_that_would_take_the_balance_past_the_ceiling(portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("1"))
    Portfolio.objects.filter(pk=portfolio.pk).update(cash=MAX_CASH - Decimal("100.00"))
    before = ledger_snapshot(portfolio)

    with pytest.raises(BalanceLimitExceeded) as caught:
        portfolio_sell(portfolio=portfolio, ticker="AAPL", quantity=Decimal("1"))

    assert "$1,000,000,000,000.00" in caught.value.message
    assert ledger_snapshot(portfolio) == before


# --- average cost, realized gain, contributions ----------------------------------------------
def test_it_keeps_average_cost_and_realizes_the_gain_on_a_sell(portfolio):
    store_bars("ACME", [(date(2023, 11, 8), "100.0000")])
    portfolio_buy(portfolio=portfolio, ticker="ACME", quantity=Decimal("10"))  # $1,000
    reprice("ACME", date(2023, 11, 9), "110.0000")
    second = portfolio_buy(portfolio=portfolio, ticker="ACME", quantity=Decimal("10"))  # $1,100

    assert second.price == Decimal("110.0000")  # the newer close, not the cached older one
    assert holding(portfolio, "ACME").average_cost == Decimal("105.0000")

    reprice("ACME", FRIDAY, "120.0000")
    sale = portfolio_sell(portfolio=portfolio, ticker="ACME", quantity=Decimal("5"))  # $600

    assert sale.price == Decimal("120.0000")
    assert sale.cash_change == Decimal("600.00")
    assert sale.realized_gain == Decimal("75.00")  # 5 x (120 - 105)
    left = holding(portfolio, "ACME")
    assert left.quantity == Decimal("15")
    assert left.cost_basis == Decimal("1575.00")
    assert left.average_cost == Decimal("105.0000")  # selling does not move the average
    portfolio.refresh_from_db()
    assert portfolio.realized_gain == Decimal("75.00")
    assert portfolio.cash == Decimal("8500.00")  # 10,000 - 1,000 - 1,100 + 600
    assert portfolio.net_contributions == Decimal("10000.00")
    assert ledger_differences(portfolio=portfolio) == []


def test_a_loss_is_realized_as_a_negative_gain(portfolio):
    store_bars("ACME", [(date(2023, 11, 9), "100.0000")])
    portfolio_buy(portfolio=portfolio, ticker="ACME", quantity=Decimal("3"))
    reprice("ACME", FRIDAY, "90.5000")

    sale = portfolio_sell(portfolio=portfolio, ticker="ACME", quantity=Decimal("3"))

    assert sale.realized_gain == Decimal("-28.50")
    portfolio.refresh_from_db()
    assert portfolio.realized_gain == Decimal("-28.50")
    assert portfolio.cash == Decimal("9971.50")


def test_deposits_and_withdrawals_move_contributions_never_gains(portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("1"))
    portfolio_deposit(portfolio=portfolio, amount=Decimal("500.00"))
    portfolio_withdraw(portfolio=portfolio, amount=Decimal("200.00"))

    portfolio.refresh_from_db()
    assert portfolio.net_contributions == Decimal("10300.00")
    assert portfolio.realized_gain == Decimal("0.00")
    assert portfolio.cash == Decimal("10300.00") - Decimal("186.40")
    assert ledger_differences(portfolio=portfolio) == []


def test_the_ledger_replays_in_the_order_trades_were_applied(portfolio):
    """A buy reads the clock, then waits on the portfolio lock while a sell of the whole
    position goes through; the buy lands after the sell but with an earlier executed_at."""
    store_bars("ACME", [(date(2023, 11, 9), "100.0000")])
    portfolio_buy(portfolio=portfolio, ticker="ACME", quantity=Decimal("10"))
    reprice("ACME", FRIDAY, "120.0000")
    buy_read_the_clock_at = timezone.now()
    portfolio_sell(portfolio=portfolio, ticker="ACME", quantity=Decimal("10"))  # gain $200

    with mock.patch.object(
        timezone, "now", return_value=buy_read_the_clock_at - timedelta(microseconds=1)
    ):
        portfolio_buy(portfolio=portfolio, ticker="ACME", quantity=Decimal("5"))

    portfolio.refresh_from_db()
    assert portfolio.realized_gain == Decimal("200.00")
    assert holding(portfolio, "ACME").cost_basis == Decimal("600.00")
    assert ledger_differences(portfolio=portfolio) == []
