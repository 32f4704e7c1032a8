"""Bob tries every page and action of Alice's portfolio: each answers 404 and changes nothing."""

from decimal import Decimal

import pytest

from portfolios.models import Holding, Portfolio, Transaction
from portfolios.services import portfolio_buy

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices(portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("5"))
    return portfolio


def _state(portfolio):
    p = Portfolio.objects.get(pk=portfolio.pk)
    return (
        p.name,
        p.cash,
        list(Holding.objects.filter(portfolio=p).values_list("ticker", "quantity")),
        Transaction.objects.filter(portfolio=p).count(),
    )


def test_another_user_gets_404_everywhere_and_changes_nothing(client, other_user, alices):
    client.force_login(other_user)
    before = _state(alices)
    pk = alices.pk
    gets = [
        f"/portfolios/{pk}/",
        f"/portfolios/{pk}/live/",
        f"/portfolios/{pk}/trade/preview/?ticker=AAPL&quantity=1",
        f"/portfolios/{pk}/delete/",
    ]
    posts = [
        (f"/portfolios/{pk}/trade/", {"side": "BUY", "ticker": "AAPL", "quantity": "1"}),
        (f"/portfolios/{pk}/trade/", {"side": "SELL", "ticker": "AAPL", "quantity": "1"}),
        (f"/portfolios/{pk}/deposit/", {"deposit-amount": "100"}),
        (f"/portfolios/{pk}/withdraw/", {"withdraw-amount": "100"}),
        (f"/portfolios/{pk}/rename/", {"name": "Mine now"}),
        (f"/portfolios/{pk}/delete/", {"confirm": alices.name}),
    ]
    for url in gets:
        assert client.get(url).status_code == 404, url
    for url, data in posts:
        assert client.post(url, data).status_code == 404, url
        assert client.post(url, data, HTTP_HX_REQUEST="true").status_code == 404, url
    assert _state(alices) == before


def test_the_dashboard_lists_only_your_own_portfolios(client, other_user, alices):
    client.force_login(other_user)
    body = client.get("/").content.decode()
    assert alices.name not in body
    assert "no portfolios yet" in body
