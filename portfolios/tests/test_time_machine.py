"""Time-machine portfolios (PRODUCT §10.2): a portfolio that starts in the past, trades at its
clock's closes, moves its clock forward only, and is valued as of that clock."""

import json
import re
from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from marketdata.port import close_of
from marketdata.price_cache import forget_current_prices
from marketdata.tests.factories import store_bars
from portfolios.exceptions import LedgerError
from portfolios.models import Portfolio, Transaction
from portfolios.services import (
    clock_target,
    ledger_differences,
    portfolio_advance,
    portfolio_buy,
    portfolio_create,
    portfolio_withdraw,
)

pytestmark = pytest.mark.django_db
D = Decimal
# Thu 24 Jul … Fri 1 Aug 2025 (eight sessions), then Mon 4 Aug.
DAYS = [date(2025, 7, d) for d in (24, 25, 28, 29, 30, 31)] + [date(2025, 8, 1), date(2025, 8, 4)]


@pytest.fixture
def stored(db):
    store_bars("AAPL", [(d, f"{200 + i}.5000") for i, d in enumerate(DAYS)])
    store_bars("MSFT", [(d, "500.0000") for d in DAYS])
    forget_current_prices(["AAPL", "MSFT"])


@pytest.fixture
def machine(user, stored) -> Portfolio:
    return portfolio_create(
        owner=user, name="1985", opening_deposit=D("10000"), starts_on=date(2025, 7, 24)
    )


def test_it_starts_at_a_stored_session_with_its_deposit_dated_there(machine):
    assert machine.clock == date(2025, 7, 24)
    deposit = Transaction.objects.get(portfolio=machine)
    assert deposit.executed_at == close_of(date(2025, 7, 24))


def test_a_start_on_a_weekend_moves_to_the_next_session(user, stored):
    weekend = portfolio_create(owner=user, name="Sat", starts_on=date(2025, 7, 26))
    assert weekend.clock == date(2025, 7, 28)


@pytest.mark.parametrize("start", [date(2025, 7, 1), date(2025, 8, 5), date(2030, 1, 1)])
def test_a_start_outside_the_stored_history_is_refused(user, stored, start):
    with pytest.raises(LedgerError, match="Pick a start date between Thu 24 Jul 2025 and Mon 4"):
        portfolio_create(owner=user, name="Nope", starts_on=start)
    assert not Portfolio.objects.exists()


def test_trades_fill_at_the_clocks_close_with_that_bars_provenance(machine):
    bought = portfolio_buy(portfolio=machine, ticker="AAPL", quantity=D("10"))
    assert bought.price == D("200.5000")
    assert bought.price_as_of == close_of(date(2025, 7, 24)) and not bought.price_was_stale
    assert bought.executed_at == close_of(date(2025, 7, 24))
    portfolio_advance(portfolio=machine, to=date(2025, 8, 4))
    sold = portfolio_buy(portfolio=machine, ticker="AAPL", quantity=D("1"))
    assert sold.price == D("207.5000")


def test_the_clock_moves_forward_only_and_never_past_the_stored_history(machine):
    portfolio_advance(portfolio=machine, to=date(2025, 7, 27))  # a Sunday: Friday's session
    assert machine.clock == date(2025, 7, 25)
    with pytest.raises(LedgerError, match="only moves forward"):
        portfolio_advance(portfolio=machine, to=date(2025, 7, 24))
    with pytest.raises(LedgerError, match="latest stored session is Mon 4 Aug 2025"):
        portfolio_advance(portfolio=machine, to=date(2025, 8, 5))
    assert Portfolio.objects.get(pk=machine.pk).clock == date(2025, 7, 25)


def test_next_day_week_and_month(machine):
    assert clock_target(date(2025, 7, 25), "day") == date(2025, 7, 28)  # Friday → Monday
    assert clock_target(date(2025, 7, 25), "week") == date(2025, 8, 1)
    assert clock_target(date(2025, 1, 31), "month") == date(2025, 2, 28)


def test_an_entry_dated_before_the_latest_is_refused(machine, on_postgres):
    portfolio_advance(portfolio=machine, to=date(2025, 7, 30))
    portfolio_withdraw(portfolio=machine, amount=D("1"))
    if on_postgres:  # the database holds the rule too
        refused = pytest.raises(IntegrityError, match="before the portfolio's latest entry")
        with refused, transaction.atomic():
            Transaction.objects.create(
                portfolio=machine,
                kind=Transaction.Kind.DEPOSIT,
                cash_change=D("5"),
                executed_at=close_of(date(2025, 7, 25)),
            )
    assert ledger_differences(portfolio=Portfolio.objects.get(pk=machine.pk)) == []


@pytest.fixture
def on_postgres():
    from django.db import connection

    return connection.vendor == "postgresql"


# --- pages --------------------------------------------------------------------------------------
def test_the_create_form_offers_a_start_bounded_by_the_stored_history(auth_client, stored):
    body = auth_client.get("/").content.decode()
    field = re.search(r'<input type="date" name="starts_on"[^>]*>', body).group(0)
    assert 'min="2025-07-24"' in field and 'max="2025-08-04"' in field
    response = auth_client.post(
        "/portfolios/",
        {"name": "Past", "opening_deposit": "10000", "starts_on": "2025-07-24"},
    )
    portfolio = Portfolio.objects.get(name="Past")
    assert response.status_code == 302 and portfolio.clock == date(2025, 7, 24)
    assert "time machine · Thu 24 Jul 2025" in auth_client.get("/").content.decode()


def test_the_clock_buttons_move_it_and_a_bad_date_is_refused_with_a_message(auth_client, machine):
    url = f"/portfolios/{machine.pk}/clock/"
    assert auth_client.post(url, {"step": "day"}).status_code == 302
    page = auth_client.get(f"/portfolios/{machine.pk}/").content.decode()
    assert 'id="clock-date">Fri 25 Jul 2025' in page
    refused = auth_client.post(url, {"to": "2025-07-24"})
    assert refused.status_code == 422
    assert "The clock only moves forward" in refused.content.decode()
    late = auth_client.post(url, {"to": "2026-01-01"})
    assert late.status_code == 422 and "latest stored session is Mon 4 Aug 2025" in (
        late.content.decode()
    )
    assert Portfolio.objects.get(pk=machine.pk).clock == date(2025, 7, 25)


def test_the_value_card_charts_the_series_and_the_returns(auth_client, machine):
    portfolio_buy(portfolio=machine, ticker="AAPL", quantity=D("10"))
    portfolio_advance(portfolio=machine, to=date(2025, 8, 4))
    body = auth_client.get(f"/portfolios/{machine.pk}/performance/?benchmark=MSFT").content
    body = body.decode()
    figure = json.loads(
        re.search(
            r'<script id="value-chart-figure" type="application/json">(.*?)</script>', body
        ).group(1)
    )
    portfolio_line, benchmark = figure["data"][0], figure["data"][-1]
    assert portfolio_line["x"][0] == "2025-07-24" and portfolio_line["x"][-1] == "2025-08-04"
    assert portfolio_line["y"][-1] == "10070.00"  # 10,000 − 2,005 + 10 × 207.50
    assert benchmark["name"] == "MSFT (rebased)" and benchmark["y"][0] == "10000.00"
    assert "Time-weighted" in body and "+0.70%" in body  # 70 on 10,000, no deposit since


def test_the_stock_page_opened_from_a_time_machine_ends_at_its_clock(auth_client, machine):
    portfolio_advance(portfolio=machine, to=date(2025, 7, 29))
    body = auth_client.get(f"/stocks/AAPL/?portfolio={machine.pk}").content.decode()
    assert "As it stood on Tue 29 Jul 2025" in body
    assert "$203.50" in body  # the close on the clock, not the latest stored (207.50)
    figure = json.loads(
        re.search(
            r'<script id="chart-AAPL-figure" type="application/json">(.*?)</script>', body
        ).group(1)
    )
    assert figure["data"][0]["x"][-1] == "2025-07-29"


def test_someone_elses_time_machine_gives_nothing_away(client, other_user, machine):
    client.force_login(other_user)
    body = client.get(f"/stocks/AAPL/?portfolio={machine.pk}").content.decode()
    assert "As it stood" not in body
    assert client.post(f"/portfolios/{machine.pk}/clock/", {"step": "day"}).status_code == 404
    assert client.get(f"/portfolios/{machine.pk}/performance/").status_code == 404


def test_a_live_portfolio_has_no_clock_to_move(auth_client, portfolio, stored):
    response = auth_client.post(f"/portfolios/{portfolio.pk}/clock/", {"step": "day"})
    assert response.status_code == 422 and "This portfolio is live" in response.content.decode()
    assert Portfolio.objects.get(pk=portfolio.pk).clock is None


def test_a_time_machine_trade_spends_no_quota(live, fake_av, user, stored):
    machine = portfolio_create(
        owner=user, name="Quiet", opening_deposit=D("1000"), starts_on=date(2025, 7, 24)
    )
    portfolio_buy(portfolio=machine, ticker="AAPL", quantity=D("1"))
    portfolio_advance(portfolio=machine, to=date(2025, 8, 1))
    portfolio_buy(portfolio=machine, ticker="MSFT", quantity=D("1"))
    assert fake_av.count() == 0


def test_a_live_portfolio_has_its_value_card_too(auth_client, portfolio, stored):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=D("2"))
    body = auth_client.get(f"/portfolios/{portfolio.pk}/performance/").content.decode()
    assert 'data-chart="value-chart-figure"' in body and 'id="returns"' in body


def test_a_trade_reloads_the_value_card_after_it(auth_client, machine):
    response = auth_client.post(
        f"/portfolios/{machine.pk}/trade/",
        {"side": "BUY", "ticker": "AAPL", "quantity": "1"},
        headers={"HX-Request": "true", "HX-Target": "trade-panel"},
    )
    body = response.content.decode()
    card = re.search(r'<section id="performance"[^>]*>', body).group(0)
    assert 'hx-swap-oob="true"' in card and 'hx-trigger="load"' in card
