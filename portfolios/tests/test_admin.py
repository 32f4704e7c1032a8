"""Support sees portfolios, holdings and the ledger in the admin, and can change none of it."""

from decimal import Decimal

import pytest

from portfolios.models import Portfolio, Transaction
from portfolios.services import portfolio_buy

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    staff = django_user_model.objects.create_user(
        username="support", password="x", is_staff=True, is_superuser=True
    )
    client.force_login(staff)
    return client


def test_support_sees_every_portfolio_with_its_holdings(staff_client, portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))
    listing = staff_client.get("/admin/portfolios/portfolio/").content.decode()
    assert "Main" in listing and "alice" in listing and "8136.00" in listing
    page = staff_client.get(f"/admin/portfolios/portfolio/{portfolio.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "AAPL" in body and "10.0000" in body  # the holdings inline
    assert 'name="_save"' not in body  # nothing to save: read-only


def test_support_sees_the_ledger_and_finds_rows(staff_client, portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))
    body = staff_client.get("/admin/portfolios/transaction/", {"q": "alice"}).content.decode()
    assert "AAPL" in body and "-1864.00" in body and "Deposit" in body
    filtered = staff_client.get("/admin/portfolios/transaction/", {"kind__exact": "BUY"})
    rows = filtered.content.decode().split('id="result_list"')[1].split("</table>")[0]
    assert "AAPL" in rows and "Deposit" not in rows


def test_nothing_can_be_added_changed_or_deleted(staff_client, portfolio):
    row = Transaction.objects.get(portfolio=portfolio)
    before = (Portfolio.objects.get().cash, Transaction.objects.count())
    assert staff_client.get("/admin/portfolios/transaction/add/").status_code == 403
    assert staff_client.get("/admin/portfolios/portfolio/add/").status_code == 403
    change = f"/admin/portfolios/transaction/{row.pk}/change/"
    assert staff_client.post(change, {"cash_change": "1000000.00"}).status_code == 403
    delete = f"/admin/portfolios/portfolio/{portfolio.pk}/delete/"
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    assert (Portfolio.objects.get().cash, Transaction.objects.count()) == before
