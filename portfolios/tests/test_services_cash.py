"""Deposits and withdrawals: the cash side of the ledger (PRODUCT §2.3, §2.4, §2.7).

Every refusal is checked twice: the message says what is wrong, and nothing was written (the
ledger, the cash and the running totals re-read from the database are as they were).
"""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from portfolios.exceptions import (
    BalanceLimitExceeded,
    InsufficientFunds,
    InvalidAmount,
    LedgerError,
)
from portfolios.models import Holding, Portfolio, Transaction
from portfolios.money import MAX_AMOUNT, MAX_CASH
from portfolios.services import (
    ledger_differences,
    portfolio_create,
    portfolio_deposit,
    portfolio_withdraw,
)


def ledger_snapshot(portfolio: Portfolio) -> tuple:
    """What the database holds for ``portfolio``: re-read, never the in-memory copy."""
    portfolio.refresh_from_db()
    return (
        list(Transaction.objects.filter(portfolio=portfolio).values_list("pk", flat=True)),
        portfolio.cash,
        portfolio.net_contributions,
        portfolio.realized_gain,
        list(Holding.objects.filter(portfolio=portfolio).values_list("ticker", "quantity")),
    )


CASH_SERVICES = {"deposit": portfolio_deposit, "withdraw": portfolio_withdraw}

BAD_AMOUNTS = [
    pytest.param(Decimal("0"), "greater than zero", id="zero"),
    pytest.param(Decimal("0.00"), "greater than zero", id="zero-cents"),
    pytest.param(Decimal("-0"), "greater than zero", id="minus-zero"),
    pytest.param(Decimal("-5.00"), "greater than zero", id="negative"),
    pytest.param(Decimal("NaN"), "must be a number", id="nan"),
    pytest.param(Decimal("sNaN"), "must be a number", id="snan"),
    pytest.param(Decimal("Infinity"), "must be a number", id="infinity"),
    pytest.param(Decimal("-Infinity"), "must be a number", id="minus-infinity"),
    pytest.param(Decimal("1.001"), "at most 2 decimal places", id="tenth-of-a-cent"),
    pytest.param(Decimal("1E-3"), "at most 2 decimal places", id="exponent-fraction"),
    pytest.param(Decimal("100.000"), "at most 2 decimal places", id="trailing-zero-places"),
    pytest.param(MAX_AMOUNT + Decimal("0.01"), "at most 1,000,000,000", id="over-max"),
    pytest.param(Decimal("1E+10"), "at most 1,000,000,000", id="exponent-over-max"),
    pytest.param(10.5, "must be a number", id="float"),
    pytest.param("10.50", "must be a number", id="str"),
    pytest.param(10, "must be a number", id="int"),
    pytest.param(None, "must be a number", id="none"),
    pytest.param(True, "must be a number", id="bool"),
]


# --- deposits --------------------------------------------------------------------------------
def test_it_opens_a_portfolio_with_its_first_deposit(user):
    portfolio = portfolio_create(owner=user, name="Main", opening_deposit=Decimal("10000.00"))

    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("10000.00")
    assert portfolio.net_contributions == Decimal("10000.00")
    (row,) = portfolio.transactions.all()
    assert row.kind == Transaction.Kind.DEPOSIT
    assert row.cash_change == Decimal("10000.00")
    assert (row.ticker, row.quantity, row.price) == ("", None, None)
    assert row.executed_at.utcoffset().total_seconds() == 0


def test_it_adds_a_deposit_to_cash_and_contributions_but_not_to_gains(portfolio):
    row = portfolio_deposit(portfolio=portfolio, amount=Decimal("250.50"))

    assert row.cash_change == Decimal("250.50")
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("10250.50")
    assert portfolio.net_contributions == Decimal("10250.50")
    assert portfolio.realized_gain == Decimal("0.00")  # a deposit is not a gain
    assert ledger_differences(portfolio=portfolio) == []


def test_it_keeps_the_callers_copy_of_the_portfolio_current(portfolio):
    portfolio_deposit(portfolio=portfolio, amount=Decimal("1.00"))
    portfolio_withdraw(portfolio=portfolio, amount=Decimal("2.00"))

    assert portfolio.cash == Decimal("9999.00")
    assert portfolio.net_contributions == Decimal("9999.00")


def test_it_accepts_the_largest_single_deposit(portfolio):
    portfolio_deposit(portfolio=portfolio, amount=MAX_AMOUNT)

    portfolio.refresh_from_db()
    assert portfolio.cash == MAX_AMOUNT + Decimal("10000.00")


def test_it_accepts_an_amount_written_with_an_exponent_when_it_is_whole_cents(portfolio):
    portfolio_deposit(portfolio=portfolio, amount=Decimal("1E+3"))

    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("11000.00")
    assert ledger_differences(portfolio=portfolio) == []


@pytest.mark.parametrize("service", CASH_SERVICES.values(), ids=CASH_SERVICES.keys())
@pytest.mark.parametrize(("amount", "says"), BAD_AMOUNTS)
def test_it_refuses_an_amount_that_is_not_a_positive_number_of_cents_in_range(
    portfolio, service, amount, says
):
    before = ledger_snapshot(portfolio)

    with pytest.raises(InvalidAmount) as caught:
        service(portfolio=portfolio, amount=amount)

    assert says in caught.value.message
    assert caught.value.field == "amount"
    assert ledger_snapshot(portfolio) == before


def test_it_refuses_a_deposit_that_would_take_the_balance_past_the_ceiling(portfolio):
    Portfolio.objects.filter(pk=portfolio.pk).update(cash=MAX_CASH - Decimal("1.00"))
    before = ledger_snapshot(portfolio)

    with pytest.raises(BalanceLimitExceeded) as caught:
        portfolio_deposit(portfolio=portfolio, amount=Decimal("1.01"))

    assert "$1,000,000,000,000.00" in caught.value.message
    assert "$1,000,000,000,000.01" in caught.value.message
    assert ledger_snapshot(portfolio) == before


def test_it_refuses_an_opening_deposit_that_is_not_an_amount_and_creates_nothing(user):
    with pytest.raises(InvalidAmount):
        portfolio_create(owner=user, name="Main", opening_deposit=Decimal("NaN"))

    assert not Portfolio.objects.filter(owner=user).exists()
    assert not Transaction.objects.exists()


def test_it_refuses_a_second_portfolio_with_the_same_name(portfolio, user, other_user):
    with pytest.raises(LedgerError) as caught:
        portfolio_create(owner=user, name=" Main ", opening_deposit=Decimal("5.00"))

    assert "already have a portfolio named “Main”" in caught.value.message
    assert Portfolio.objects.filter(owner=user).count() == 1
    assert Transaction.objects.count() == 1
    # Another user may use the name: names are unique per owner.
    assert portfolio_create(owner=other_user, name="Main").owner == other_user


# --- withdrawals -----------------------------------------------------------------------------
def test_it_takes_a_withdrawal_out_of_cash_and_contributions(portfolio):
    row = portfolio_withdraw(portfolio=portfolio, amount=Decimal("2500.25"))

    assert row.kind == Transaction.Kind.WITHDRAWAL
    assert row.cash_change == Decimal("-2500.25")
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("7499.75")
    assert portfolio.net_contributions == Decimal("7499.75")
    assert portfolio.realized_gain == Decimal("0.00")
    assert ledger_differences(portfolio=portfolio) == []


def test_it_lets_the_owner_withdraw_exactly_all_their_cash(portfolio):
    portfolio_withdraw(portfolio=portfolio, amount=Decimal("10000.00"))

    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("0.00")
    assert portfolio.net_contributions == Decimal("0.00")


def test_it_refuses_a_withdrawal_over_cash_saying_what_is_available_required_and_short(
    portfolio,
):
    before = ledger_snapshot(portfolio)

    with pytest.raises(InsufficientFunds) as caught:
        portfolio_withdraw(portfolio=portfolio, amount=Decimal("10000.01"))

    error = caught.value
    assert error.available == Decimal("10000.00")
    assert error.required == Decimal("10000.01")
    assert error.shortfall == Decimal("0.01")
    assert error.field == "amount"
    assert error.message == (
        "Not enough cash: $10,000.00 available, $10,000.01 required, $0.01 short."
    )
    assert ledger_snapshot(portfolio) == before


def test_it_refuses_a_withdrawal_from_an_empty_portfolio(user):
    empty = portfolio_create(owner=user, name="Empty")
    before = ledger_snapshot(empty)

    with pytest.raises(InsufficientFunds) as caught:
        portfolio_withdraw(portfolio=empty, amount=Decimal("0.01"))

    assert "$0.00 available, $0.01 required, $0.01 short" in caught.value.message
    assert ledger_snapshot(empty) == before


def test_it_judges_a_withdrawal_against_the_stored_balance_not_a_stale_copy(portfolio):
    """A copy of the portfolio read before another request spent the cash must not let the
    owner withdraw that cash again."""
    stale_copy = Portfolio.objects.get(pk=portfolio.pk)
    portfolio_withdraw(portfolio=portfolio, amount=Decimal("9000.00"))
    before = ledger_snapshot(portfolio)

    assert stale_copy.cash == Decimal("10000.00")
    with pytest.raises(InsufficientFunds) as caught:
        portfolio_withdraw(portfolio=stale_copy, amount=Decimal("5000.00"))

    assert caught.value.available == Decimal("1000.00")
    assert caught.value.shortfall == Decimal("4000.00")
    assert ledger_snapshot(portfolio) == before


def test_it_leaves_other_portfolios_alone(portfolio, other_user):
    theirs = portfolio_create(owner=other_user, name="Theirs", opening_deposit=Decimal("50.00"))
    before = ledger_snapshot(theirs)

    portfolio_withdraw(portfolio=portfolio, amount=Decimal("100.00"))

    assert ledger_snapshot(theirs) == before


# --- the ledger is append-only and the database backs the rules ------------------------------
def test_it_refuses_to_edit_a_ledger_row(portfolio):
    row = portfolio.transactions.get()
    row.cash_change = Decimal("1000000.00")

    with pytest.raises(ValueError, match="append-only"):
        row.save()

    row.refresh_from_db()
    assert row.cash_change == Decimal("10000.00")


def test_it_refuses_to_save_a_ledger_row_read_back_from_the_database(portfolio):
    row = Transaction.objects.get(portfolio=portfolio)

    with pytest.raises(ValueError, match="correcting transaction"):
        row.save(update_fields=["cash_change"])


def test_the_database_refuses_a_negative_cash_balance(portfolio):
    with pytest.raises(IntegrityError), transaction.atomic():
        Portfolio.objects.filter(pk=portfolio.pk).update(cash=Decimal("-0.01"))

    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("10000.00")


def test_the_database_refuses_a_holding_of_zero_shares(portfolio):
    with pytest.raises(IntegrityError), transaction.atomic():
        Holding.objects.create(
            portfolio=portfolio, ticker="AAPL", quantity=Decimal("0"), cost_basis=Decimal("0")
        )

    assert not Holding.objects.exists()


@pytest.mark.parametrize(
    "row",
    [
        pytest.param({"kind": "DEPOSIT", "cash_change": Decimal("-1.00")}, id="negative-deposit"),
        pytest.param({"kind": "WITHDRAWAL", "cash_change": Decimal("1.00")}, id="positive-draw"),
        pytest.param({"kind": "GIFT", "cash_change": Decimal("1.00")}, id="unknown-kind"),
        pytest.param(
            {"kind": "DEPOSIT", "cash_change": Decimal("1.00"), "ticker": "AAPL"},
            id="deposit-with-ticker",
        ),
        pytest.param(
            {"kind": "BUY", "cash_change": Decimal("-1.00"), "ticker": "AAPL"},
            id="buy-without-quantity-price-provenance",
        ),
    ],
)
def test_the_database_refuses_a_ledger_row_of_the_wrong_shape(portfolio, row):
    from django.utils import timezone

    with pytest.raises(IntegrityError), transaction.atomic():
        Transaction.objects.create(portfolio=portfolio, executed_at=timezone.now(), **row)

    assert portfolio.transactions.count() == 1
