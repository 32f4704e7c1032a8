"""The ledger as a file (PRODUCT §11): transactions, holdings and value over time as CSV,
money as plain decimals, times in UTC beside the market date, a header row, UTF-8."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command

from marketdata.tests.factories import store_bars
from portfolios.services import portfolio_advance, portfolio_buy, portfolio_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def machine(user):
    store_bars("AAPL", [(date(2025, 7, 24), "213.7600"), (date(2025, 7, 25), "214.0500")])
    portfolio = portfolio_create(
        owner=user, name="Café, 1985", opening_deposit=Decimal("10000"), starts_on=date(2025, 7, 24)
    )
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))
    portfolio_advance(portfolio=portfolio, to=date(2025, 7, 25))
    return portfolio


def download(client, portfolio, kind) -> list[dict]:
    response = client.get(f"/portfolios/{portfolio.pk}/export/{kind}.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="portfolio-{portfolio.pk}-Caf' in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def test_the_transactions_carry_every_column_and_their_provenance(auth_client, machine):
    deposit, buy = download(auth_client, machine, "transactions")
    assert deposit["kind"] == "DEPOSIT" and deposit["cash_change"] == "10000.00"
    assert buy["kind"] == "BUY" and buy["quantity"] == "10.0000" and buy["price"] == "213.7600"
    assert buy["cash_change"] == "-2137.60"  # a plain decimal: no sign of a currency, no commas
    assert buy["executed_at_utc"] == "2025-07-24T20:00:00Z" and buy["market_date"] == "2025-07-24"
    assert buy["price_source"] == "import" and buy["price_was_stale"] == "false"
    assert buy["price_market_date"] == "2025-07-24"


def test_the_holdings_and_the_value_over_time(auth_client, machine):
    (holding,) = download(auth_client, machine, "holdings")
    assert holding["ticker"] == "AAPL" and holding["market_value"] == "2140.50"
    assert holding["price_market_date"] == "2025-07-25" and holding["average_cost"] == "213.7600"
    days = download(auth_client, machine, "value")
    assert [(d["market_date"], d["value"], d["net_deposits"]) for d in days] == [
        ("2025-07-24", "10000.00", "10000.00"),
        ("2025-07-25", "10002.90", "0"),
    ]


def test_someone_else_gets_nothing_and_an_unknown_export_is_a_404(client, other_user, machine):
    client.force_login(other_user)
    assert client.get(f"/portfolios/{machine.pk}/export/transactions.csv").status_code == 404
    client.force_login(machine.owner)
    assert client.get(f"/portfolios/{machine.pk}/export/secrets.csv").status_code == 404


def test_the_command_writes_the_same_three_files(tmp_path, auth_client, machine):
    out = io.StringIO()
    call_command("export_portfolio", str(machine.pk), "--dir", str(tmp_path), stdout=out)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == [
        f"portfolio-{machine.pk}-Caf-1985-{k}.csv" for k in ("holdings", "transactions", "value")
    ]
    on_disk = (tmp_path / written[1]).read_bytes().decode("utf-8")
    downloaded = b"".join(
        auth_client.get(f"/portfolios/{machine.pk}/export/transactions.csv").streaming_content
    ).decode("utf-8")
    assert on_disk == downloaded


def test_the_cash_column_sums_to_the_pages_cash(auth_client, machine):
    """Every kind of entry that moves cash — deposit, buys, a limit order's fill, a sell, a
    withdrawal — read back with the csv module: the cash column adds up to the page's cash."""
    import re

    from marketdata.bars import DailyBar
    from marketdata.port import Source
    from marketdata.price_cache import announce_stored
    from marketdata.storage import upsert_daily_bars
    from portfolios.orders import order_place
    from portfolios.services import portfolio_sell, portfolio_withdraw

    upsert_daily_bars(
        ticker="AAPL",
        bars=[
            DailyBar(
                date(2025, 7, 28),
                Decimal("214"),
                Decimal("215"),
                Decimal("209.5"),
                Decimal("212.3333"),
                1000,
            )
        ],
        source=Source.IMPORT,
        fetched_at=machine.created_at,
    )
    announce_stored(["AAPL"])
    order = order_place(
        portfolio=machine,
        side="BUY",
        kind="LIMIT",
        ticker="AAPL",
        quantity=Decimal("3.3333"),
        trigger=Decimal("210.0001"),
        time_in_force="DAY",
    )
    portfolio_advance(portfolio=machine, to=date(2025, 7, 28))
    portfolio_sell(portfolio=machine, ticker="AAPL", quantity=Decimal("1.5"))
    portfolio_withdraw(portfolio=machine, amount=Decimal("123.45"))
    rows = download(auth_client, machine, "transactions")
    fill = next(r for r in rows if r["order_id"] == str(order.pk))
    assert (fill["price"], fill["price_rule"]) == ("210.0001", "limit, touched")
    total = sum(Decimal(r["cash_change"]) for r in rows)
    page = auth_client.get(f"/portfolios/{machine.pk}/").content.decode()
    shown = re.search(r'<strong id="cash">\$([0-9,.]+)</strong>', page)[1]
    assert total == Decimal(shown.replace(",", ""))
    machine.refresh_from_db()
    assert total == machine.cash
