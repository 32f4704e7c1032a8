"""Corporate actions reach positions (PRODUCT §2.8): a split changes the shares and the average
cost, never the value, the gain or the cash; a dividend credits the shares held at the close
before its ex-date, once, to the cent. Both are ledger entries, idempotent, and
``recompute_holdings`` replays them."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command

from marketdata.actions import NewAction, import_action_file, store_actions
from marketdata.importing import import_price_file
from marketdata.port import ActionKind, Source
from marketdata.price_cache import forget_current_prices
from marketdata.tests import factories
from portfolios.models import Holding, Transaction
from portfolios.selectors import portfolio_summary
from portfolios.services import (
    apply_corporate_actions,
    ledger_differences,
    portfolio_buy,
    portfolio_create,
    portfolio_sell,
)

pytestmark = pytest.mark.django_db

MON, TUE, WED = date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)


def store_bars(ticker: str, closes) -> None:
    """Store bars as the importer would: the cached current price is dropped."""
    factories.store_bars(ticker, closes)
    forget_current_prices([ticker])


def test_a_two_for_one_split_doubles_the_shares_and_keeps_value_gain_and_cash(
    tmp_path, portfolio, django_capture_on_commit_callbacks
):
    store_bars("SPLT", [(MON, "100.0000")])
    portfolio_buy(portfolio=portfolio, ticker="SPLT", quantity=Decimal("10"))
    portfolio.refresh_from_db()
    cash_before = portfolio.cash
    value_before = portfolio_summary(portfolio).total_value

    # The split and the first bar after it arrive by import, as files.
    actions = tmp_path / "actions.csv"
    actions.write_text("ticker,kind,date,value\nSPLT,split,2024-03-05,2\n", encoding="utf-8")
    bars = tmp_path / "SPLT.csv"
    bars.write_text("date,open,high,low,close,volume\n2024-03-05,50,51,49,50,2000\n")
    with django_capture_on_commit_callbacks(execute=True):
        import_action_file(actions)
        import_price_file(path=bars)
    for _ in range(2):  # the job after the import already ran; the command, twice more
        call_command("apply_corporate_actions", stdout=open("/dev/null", "w"))  # noqa: SIM115

    holding = Holding.objects.get(portfolio=portfolio, ticker="SPLT")
    assert holding.quantity == Decimal("20.0000")
    assert holding.average_cost == Decimal("50.0000")
    assert holding.cost_basis == Decimal("1000.00")
    portfolio.refresh_from_db()
    assert portfolio.cash == cash_before
    summary = portfolio_summary(portfolio)
    assert summary.total_value == value_before  # 20 × $50 = 10 × $100
    assert summary.holdings[0].unrealized_gain == Decimal("0.00")
    splits = Transaction.objects.filter(portfolio=portfolio, kind=Transaction.Kind.SPLIT)
    assert [(s.quantity, s.cash_change, s.effective_on) for s in splits] == [
        (Decimal("10.0000"), Decimal("0.00"), TUE)
    ]
    assert splits[0].price_source == Source.IMPORT and splits[0].action_value == 2
    assert ledger_differences(portfolio=portfolio) == []


def test_shares_bought_after_a_split_are_not_split_again(portfolio):
    store_bars("SPLT", [(MON, "100.0000")])
    portfolio_buy(portfolio=portfolio, ticker="SPLT", quantity=Decimal("10"))
    store_bars("SPLT", [(TUE, "50.0000")])
    portfolio_buy(portfolio=portfolio, ticker="SPLT", quantity=Decimal("4"))  # at $50, after
    store_actions([NewAction("SPLT", ActionKind.SPLIT, TUE, Decimal("2"))], source=Source.IMPORT)
    applied = apply_corporate_actions()
    assert applied.splits == 1
    holding = Holding.objects.get(portfolio=portfolio, ticker="SPLT")
    assert holding.quantity == Decimal("24")  # 10 × 2 + 4
    assert holding.cost_basis == Decimal("1200.00")
    assert ledger_differences(portfolio=portfolio) == []


def test_a_reverse_split_keeps_fractional_shares_rounded_half_even(portfolio):
    store_bars("REV", [(MON, "1.0000")])
    portfolio_buy(portfolio=portfolio, ticker="REV", quantity=Decimal("1234.5678"))
    store_actions([NewAction("REV", ActionKind.SPLIT, TUE, Decimal("0.1"))], source=Source.IMPORT)
    apply_corporate_actions()
    holding = Holding.objects.get(portfolio=portfolio, ticker="REV")
    assert holding.quantity == Decimal("123.4568")  # 123.45678 → 4 places, half-even
    entry = Transaction.objects.get(kind=Transaction.Kind.SPLIT)
    assert entry.quantity == Decimal("-1111.1110")
    assert ledger_differences(portfolio=portfolio) == []


def test_a_dividend_pays_the_shares_held_at_the_close_before_the_ex_date_once(user):
    holder = portfolio_create(owner=user, name="Holder", opening_deposit=Decimal("10000"))
    latecomer = portfolio_create(owner=user, name="Latecomer", opening_deposit=Decimal("10000"))
    seller = portfolio_create(owner=user, name="Seller", opening_deposit=Decimal("10000"))
    store_bars("DIVY", [(MON, "50.0000")])
    portfolio_buy(portfolio=holder, ticker="DIVY", quantity=Decimal("10.5"))
    portfolio_buy(portfolio=seller, ticker="DIVY", quantity=Decimal("3"))
    store_bars("DIVY", [(TUE, "49.6000")])  # the ex-date: buying now gets no dividend
    portfolio_buy(portfolio=latecomer, ticker="DIVY", quantity=Decimal("100"))
    portfolio_sell(portfolio=seller, ticker="DIVY", quantity=Decimal("3"))  # held at the close
    dividend = NewAction("DIVY", ActionKind.DIVIDEND, TUE, Decimal("0.3333"), pay_date=WED)
    store_actions([dividend], source=Source.IMPORT)

    assert apply_corporate_actions(today=TUE).dividends == 0  # not paid until WED
    first = apply_corporate_actions(today=WED)
    again = apply_corporate_actions(today=WED)
    assert (first.dividends, again.dividends) == (2, 0)

    paid = {
        t.portfolio.name: (t.quantity, t.cash_change)
        for t in Transaction.objects.filter(kind=Transaction.Kind.DIVIDEND)
    }
    # 10.5 × 0.3333 = 3.49965 → $3.50; 3 × 0.3333 = 0.9999 → $1.00 (half-even, to the cent)
    assert paid == {
        "Holder": (Decimal("10.5000"), Decimal("3.50")),
        "Seller": (Decimal("3.0000"), Decimal("1.00")),
    }
    for portfolio in (holder, latecomer, seller):
        portfolio.refresh_from_db()
        assert ledger_differences(portfolio=portfolio) == []
    assert holder.realized_gain == Decimal("3.50")  # income, not a deposit
    assert holder.net_contributions == Decimal("10000.00")


def test_the_database_refuses_a_second_entry_for_one_action(portfolio):
    from django.db import IntegrityError, transaction
    from django.utils import timezone

    store_bars("SPLT", [(MON, "100.0000")])
    portfolio_buy(portfolio=portfolio, ticker="SPLT", quantity=Decimal("10"))
    store_actions([NewAction("SPLT", ActionKind.SPLIT, TUE, Decimal("2"))], source=Source.IMPORT)
    apply_corporate_actions()
    with pytest.raises(IntegrityError), transaction.atomic():
        Transaction.objects.create(
            portfolio=portfolio,
            kind=Transaction.Kind.SPLIT,
            ticker="SPLT",
            quantity=Decimal("10"),
            cash_change=Decimal("0"),
            executed_at=timezone.now(),
            price_source=Source.IMPORT,
            effective_on=TUE,
            action_value=Decimal("2"),
        )
