"""recompute_holdings: the command that replays every ledger and proves the running totals and
the holdings table agree with it (PRODUCT §2.6), and rewrites them with --fix."""

from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from marketdata.price_cache import forget_current_prices
from marketdata.tests.factories import store_bars
from portfolios.models import Holding, Portfolio
from portfolios.services import (
    ledger_differences,
    portfolio_buy,
    portfolio_create,
    portfolio_deposit,
    portfolio_sell,
    portfolio_withdraw,
)


def recompute(*args: str) -> str:
    out = StringIO()
    call_command("recompute_holdings", *args, stdout=out)
    return out.getvalue()


def recompute_refused(*args: str) -> tuple[str, str]:
    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("recompute_holdings", *args, stdout=out)
    return out.getvalue(), str(caught.value)


def stored(portfolio: Portfolio) -> tuple:
    portfolio.refresh_from_db()
    return (
        portfolio.cash,
        portfolio.net_contributions,
        portfolio.realized_gain,
        list(portfolio.holdings.values_list("ticker", "quantity", "cost_basis")),
    )


@pytest.fixture
def traded(portfolio, aapl, ibm):
    """A portfolio with a history: buys at two prices, a partial sell, a sell to zero, cash in
    and out."""
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))
    store_bars("AAPL", [(date(2023, 11, 13), "184.8000")])
    forget_current_prices(["AAPL"])
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("2.5"))
    portfolio_sell(portfolio=portfolio, ticker="AAPL", quantity=Decimal("3.3333"))
    portfolio_buy(portfolio=portfolio, ticker="IBM", quantity=Decimal("4"))
    portfolio_sell(portfolio=portfolio, ticker="IBM", quantity=Decimal("4"))
    portfolio_deposit(portfolio=portfolio, amount=Decimal("123.45"))
    portfolio_withdraw(portfolio=portfolio, amount=Decimal("23.45"))
    portfolio.refresh_from_db()
    return portfolio


def test_it_finds_nothing_to_report_after_ordinary_trading(traded, other_user):
    portfolio_create(owner=other_user, name="Theirs", opening_deposit=Decimal("1.00"))

    output = recompute()

    assert "2 portfolios checked, 0 disagreed with their ledger" in output
    assert "stored" not in output


def test_it_reports_a_holding_whose_quantity_was_changed_behind_the_ledgers_back(traded):
    Holding.objects.filter(portfolio=traded, ticker="AAPL").update(quantity=Decimal("100"))

    output, error = recompute_refused()

    assert "1 portfolios checked, 1 disagreed with their ledger" in error
    assert f"portfolio {traded.pk} (Main): holding AAPL: stored (quantity, cost)" in output
    assert "Decimal('100.0000')" in output
    assert "ledger says (Decimal('9.1667')" in output


def test_it_reports_cash_changed_behind_the_ledgers_back(traded):
    ledger_cash = traded.cash
    Portfolio.objects.filter(pk=traded.pk).update(cash=ledger_cash + Decimal("1000000.00"))

    output, error = recompute_refused()

    assert "1 disagreed" in error
    assert f"cash: stored {ledger_cash + Decimal('1000000.00')}, ledger says {ledger_cash}" in (
        output
    )
    assert "holding" not in output


def test_it_reports_a_missing_holding_and_a_holding_the_ledger_never_bought(traded):
    Holding.objects.filter(portfolio=traded, ticker="AAPL").delete()
    Holding.objects.create(
        portfolio=traded, ticker="MSFT", quantity=Decimal("1"), cost_basis=Decimal("1")
    )

    output, _ = recompute_refused()

    assert "holding AAPL: stored (quantity, cost) None, ledger says" in output
    assert "holding MSFT: stored (quantity, cost) (Decimal('1.0000'), Decimal('1.00')), " in (
        output
    )
    assert "ledger says None" in output


def test_it_rewrites_the_stored_figures_from_the_ledger_with_fix(traded):
    truth = stored(traded)
    Holding.objects.filter(portfolio=traded, ticker="AAPL").update(
        quantity=Decimal("1"), cost_basis=Decimal("0")
    )
    Portfolio.objects.filter(pk=traded.pk).update(
        cash=Decimal("0"), net_contributions=Decimal("5"), realized_gain=Decimal("-7")
    )

    output = recompute("--fix")

    assert f"portfolio {traded.pk}: rewritten from the ledger" in output
    assert "1 portfolios checked, 1 disagreed with their ledger" in output
    assert stored(traded) == truth
    assert "0 disagreed" in recompute()
    assert ledger_differences(portfolio=traded) == []


def test_it_checks_only_the_portfolio_it_is_asked_about(traded, other_user):
    theirs = portfolio_create(owner=other_user, name="Theirs", opening_deposit=Decimal("9.00"))
    Portfolio.objects.filter(pk=theirs.pk).update(cash=Decimal("8.00"))

    output = recompute("--portfolio", str(traded.pk))
    assert "1 portfolios checked, 0 disagreed" in output

    output, error = recompute_refused("--portfolio", str(theirs.pk))
    assert f"portfolio {theirs.pk} (Theirs): cash: stored 8.00, ledger says 9.00" in output


def test_fix_leaves_agreeing_portfolios_untouched(traded, other_user):
    theirs = portfolio_create(owner=other_user, name="Theirs", opening_deposit=Decimal("9.00"))
    Portfolio.objects.filter(pk=theirs.pk).update(cash=Decimal("8.00"))
    holdings_before = list(Holding.objects.filter(portfolio=traded).values_list("pk", flat=True))

    output = recompute("--fix")

    assert f"portfolio {theirs.pk}: rewritten" in output
    assert f"portfolio {traded.pk}" not in output
    # traded's holdings were not deleted and recreated
    assert list(Holding.objects.filter(portfolio=traded).values_list("pk", flat=True)) == (
        holdings_before
    )
    theirs.refresh_from_db()
    assert theirs.cash == Decimal("9.00")
