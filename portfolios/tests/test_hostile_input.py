"""Hostile input in every form and URL of the ledger (PRODUCT §2.7, §8): odd tickers, signs,
exponents, NaN, localized digits, control characters, markup, SQL, very long strings. Each
gets a form error (422) or another 4xx, never a 500, and never a change to the ledger; what
is shown back is escaped.

Each property compares a snapshot of every Portfolio, Holding and Transaction row (cash
included) before and after. Where an input is legitimately acceptable (a fine new name, a
plain amount) an oracle written from §2.7 says so, and the test checks the one change it
should make instead. Example counts come from the hypothesis profile (conftest.py).
"""

import re
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.utils.html import escape
from hypothesis import assume, example, given
from hypothesis import strategies as st

from marketdata.port import InvalidTicker, normalize_ticker
from marketdata.tests.test_hostile_input import fixtures_ok, hostile_number, hostile_text
from portfolios.models import Holding, Portfolio, Transaction
from portfolios.money import MAX_AMOUNT, MAX_QUANTITY, decimal_places, to_cash
from portfolios.services import portfolio_buy

pytestmark = pytest.mark.django_db

AAPL_PRICE = Decimal("186.4000")  # the `aapl` fixture's latest close
HELD = Decimal("5")
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def book(portfolio, aapl):
    """Alice's "Main": $10,000 deposited, 5 AAPL bought; the page has holdings and a chart."""
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=HELD)
    portfolio.refresh_from_db()
    return portfolio


def snapshot():
    return (
        sorted(
            Portfolio.objects.values_list(
                "id", "owner_id", "name", "cash", "net_contributions", "realized_gain"
            )
        ),
        sorted(Holding.objects.values_list("portfolio_id", "ticker", "quantity", "cost_basis")),
        sorted(
            Transaction.objects.values_list(
                "id", "portfolio_id", "kind", "ticker", "quantity", "price", "cash_change"
            )
        ),
    )


# --- the oracle: what §2.7 accepts ----------------------------------------------------------------
PLAIN = re.compile(r"[0-9]+\.?[0-9]*|\.[0-9]+")
GROUPED = re.compile(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?")  # 10,000 and 1,000.50


def plain_decimal(raw: str, *, places: int, maximum: Decimal) -> Decimal | None:
    """``raw`` as the forms accept it (ASCII digits, commas only between thousands, one
    optional point, positive, few enough places, within range), or None."""
    text = raw.strip()
    if len(text) > 32 or not (PLAIN.fullmatch(text) or GROUPED.fullmatch(text)):
        return None
    number = Decimal(text.replace(",", ""))
    if number <= 0 or decimal_places(number) > places or number > maximum:
        return None
    return number


def a_ticker(raw: str) -> str | None:
    try:
        return normalize_ticker(raw)
    except InvalidTicker:
        return None


def a_name(raw: str) -> str | None:
    name = raw.strip()
    return name if 0 < len(name) <= 100 and name.isprintable() else None


def refused(response, before) -> None:
    assert response.status_code != 500
    assert 400 <= response.status_code < 500, response.status_code
    assert snapshot() == before


HTMX = [{}, {"HTTP_HX_REQUEST": "true"}]


# --- money ----------------------------------------------------------------------------------------
@fixtures_ok
@given(amount=hostile_number, headers=st.sampled_from(HTMX))
def test_a_deposit_of_anything_but_a_plain_amount_is_refused(auth_client, book, amount, headers):
    assume(plain_decimal(amount, places=2, maximum=MAX_AMOUNT) is None)
    before = snapshot()
    response = auth_client.post(
        f"/portfolios/{book.pk}/deposit/", {"deposit-amount": amount}, **headers
    )
    assert response.status_code == 422
    refused(response, before)


@fixtures_ok
@given(amount=hostile_number, headers=st.sampled_from(HTMX))
def test_a_withdrawal_of_anything_but_an_available_amount_is_refused(
    auth_client, book, amount, headers
):
    number = plain_decimal(amount, places=2, maximum=MAX_AMOUNT)
    assume(number is None or number > book.cash)
    before = snapshot()
    response = auth_client.post(
        f"/portfolios/{book.pk}/withdraw/", {"withdraw-amount": amount}, **headers
    )
    assert response.status_code == 422
    refused(response, before)


@fixtures_ok
@given(name=hostile_text, deposit=hostile_number)
def test_a_new_portfolio_with_a_bad_opening_deposit_is_not_created(
    auth_client, book, name, deposit
):
    assume(deposit.strip() and plain_decimal(deposit, places=2, maximum=MAX_AMOUNT) is None)
    before = snapshot()
    response = auth_client.post("/portfolios/", {"name": name, "opening_deposit": deposit})
    assert response.status_code == 422
    refused(response, before)


# --- trades ---------------------------------------------------------------------------------------
def buyable(quantity: str, cash: Decimal) -> bool:
    number = plain_decimal(quantity, places=4, maximum=MAX_QUANTITY)
    return number is not None and Decimal("0.01") <= to_cash(number * AAPL_PRICE) <= cash


def sellable(quantity: str) -> bool:
    number = plain_decimal(quantity, places=4, maximum=MAX_QUANTITY)
    return number is not None and number <= HELD and to_cash(number * AAPL_PRICE) > 0


@fixtures_ok
@given(
    side=st.sampled_from(["BUY", "SELL"]),
    quantity=hostile_number,
    headers=st.sampled_from(HTMX),
)
def test_a_trade_of_a_bad_quantity_is_refused(auth_client, book, side, quantity, headers):
    assume(not (buyable(quantity, book.cash) if side == "BUY" else sellable(quantity)))
    before = snapshot()
    data = {"side": side, "ticker": "AAPL", "quantity": quantity}
    response = auth_client.post(f"/portfolios/{book.pk}/trade/", data, **headers)
    assert response.status_code == 422
    refused(response, before)


@fixtures_ok
@given(side=st.sampled_from(["BUY", "SELL"]), ticker=hostile_text, headers=st.sampled_from(HTMX))
def test_a_trade_in_a_bad_or_unknown_ticker_is_refused(auth_client, book, side, ticker, headers):
    assume(a_ticker(ticker.strip()) != "AAPL")  # the form trims, as for "\xa0AAPL\xa0"
    before = snapshot()
    data = {"side": side, "ticker": ticker, "quantity": "1"}
    response = auth_client.post(f"/portfolios/{book.pk}/trade/", data, **headers)
    assert response.status_code == 422
    refused(response, before)


@fixtures_ok
@given(side=hostile_text, quantity=st.sampled_from(["1", "0.5"]))
def test_a_trade_on_a_side_that_is_neither_buy_nor_sell_is_refused(
    auth_client, book, side, quantity
):
    assume(side not in ("BUY", "SELL"))
    before = snapshot()
    data = {"side": side, "ticker": "AAPL", "quantity": quantity}
    response = auth_client.post(f"/portfolios/{book.pk}/trade/", data)
    assert response.status_code == 422
    refused(response, before)


@fixtures_ok
@given(side=hostile_text, ticker=hostile_text, quantity=hostile_number)
def test_the_trade_preview_answers_anything_and_writes_nothing(
    auth_client, book, side, ticker, quantity
):
    before = snapshot()
    response = auth_client.get(
        f"/portfolios/{book.pk}/trade/preview/",
        {"side": side, "ticker": ticker, "quantity": quantity},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert SCRIPT not in response.content.decode()
    assert snapshot() == before


# --- names ----------------------------------------------------------------------------------------
@fixtures_ok
@given(name=hostile_text)
@example(name="<")  # in every page's markup: look where the name is shown, not anywhere
@example(name="<script>alert(1)</script>")
def test_a_name_is_either_refused_or_stored_as_typed_and_shown_escaped(auth_client, book, name):
    before = snapshot()
    response = auth_client.post("/portfolios/", {"name": name})
    stored = a_name(name)
    if stored is None or stored == book.name:
        assert response.status_code == 422
        refused(response, before)
        return
    created = Portfolio.objects.get(owner=book.owner, name=stored)
    try:
        assert response.status_code == 302
        assert response["Location"] == f"/portfolios/{created.pk}/"
        assert not created.transactions.exists()
        # Where each page shows the name (the dashboard's link, the portfolio's heading) it
        # reads escaped, never raw; a bare "<" is in every page's markup, so look there only.
        dashboard = auth_client.get("/").content.decode()
        detail = auth_client.get(f"/portfolios/{created.pk}/").content.decode()
        for body, shown in ((dashboard, '/">{}</a>'), (detail, "<h1>{}</h1>")):
            assert shown.format(escape(stored)) in body, shown
            if escape(stored) != stored:
                assert shown.format(stored) not in body, shown
    finally:
        created.delete()
    assert snapshot() == before


@fixtures_ok
@given(name=hostile_text)
def test_a_rename_is_either_refused_or_stored_as_typed(auth_client, book, name):
    before = snapshot()
    response = auth_client.post(f"/portfolios/{book.pk}/rename/", {"name": name})
    stored = a_name(name)
    if stored is None:
        assert response.status_code == 422
        refused(response, before)
        return
    renamed = Portfolio.objects.get(pk=book.pk).name
    Portfolio.objects.filter(pk=book.pk).update(name=book.name)
    assert response.status_code == 302
    assert renamed == stored
    assert snapshot() == before


@fixtures_ok
@given(confirm=hostile_text)
def test_a_delete_confirmed_with_anything_but_the_name_is_refused(auth_client, book, confirm):
    assume(confirm != book.name)
    before = snapshot()
    response = auth_client.post(f"/portfolios/{book.pk}/delete/", {"confirm": confirm})
    assert response.status_code == 422
    refused(response, before)


def test_a_script_name_renders_as_text_everywhere(auth_client, book):
    response = auth_client.post("/portfolios/", {"name": SCRIPT}, follow=True)
    created = Portfolio.objects.get(name=SCRIPT)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    pages = [
        response,  # the new portfolio's page, with the "created" message
        auth_client.get("/"),
        auth_client.get(f"/portfolios/{created.pk}/"),
        auth_client.get(f"/portfolios/{created.pk}/delete/"),
        auth_client.get("/stocks/AAPL/"),
        auth_client.post(f"/portfolios/{created.pk}/rename/", {"name": ""}),
        auth_client.post(f"/portfolios/{created.pk}/delete/", {"confirm": "no"}),
    ]
    for page in pages:
        body = page.content.decode()
        assert page.status_code in (200, 422)
        assert escaped in body, page.request["PATH_INFO"]
        assert SCRIPT not in body, page.request["PATH_INFO"]


# --- query parameters and URLs --------------------------------------------------------------------
@fixtures_ok
@given(
    params=st.dictionaries(
        st.sampled_from(["page", "kind", "side", "ticker", "q", "u"]), hostile_text, max_size=4
    ),
    target=st.sampled_from([None, "transactions"]),
)
def test_the_portfolio_page_takes_any_query_parameters(auth_client, book, params, target):
    before = snapshot()
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target} if target else {}
    response = auth_client.get(f"/portfolios/{book.pk}/", params, **headers)
    assert response.status_code == 200
    body = response.content.decode()
    assert SCRIPT not in body
    live = auth_client.get(f"/portfolios/{book.pk}/live/", params, HTTP_HX_REQUEST="true")
    assert live.status_code == 200
    assert snapshot() == before


@fixtures_ok
@given(ticker=hostile_text)
def test_any_stock_url_is_a_page_a_redirect_or_a_404(auth_client, book, ticker):
    before = snapshot()
    response = auth_client.get(f"/stocks/{quote(ticker, safe='')}/")
    symbol = a_ticker(ticker) if "/" not in ticker else None
    if symbol == ticker == "AAPL":
        assert response.status_code == 200
    elif symbol is not None and symbol != ticker:
        assert response.status_code == 302
        assert response["Location"] == f"/stocks/{symbol}/"
    else:
        assert response.status_code == 404
    assert SCRIPT not in response.content.decode()
    assert snapshot() == before


@fixtures_ok
@given(ticker=hostile_text)
def test_any_stock_url_when_live(auth_client, book, live, fake_av, ticker):
    """Live, an unknown well-formed ticker goes to the provider: still no 500."""
    before = snapshot()
    response = auth_client.get(f"/stocks/{quote(ticker, safe='')}/")
    assert response.status_code in (200, 302, 404)
    assert snapshot() == before


@pytest.mark.parametrize(
    "path",
    [
        "/stocks/%FF/",
        "/stocks/%00/",
        "/stocks/%C0%AF/",
        "/stocks/..%2F..%2Fetc%2Fpasswd/",
        "/stocks/AAPL%00/",
        "/stocks/%3Cscript%3E/",
        "/stocks/" + "A" * 5000 + "/",
        "/portfolios/99999999999999999999999999/",
        "/portfolios/-1/",
        "/portfolios/%FF/",
    ],
)
def test_odd_bytes_in_the_path_are_a_404(auth_client, book, path):
    before = snapshot()
    assert auth_client.get(path).status_code == 404
    assert snapshot() == before


@fixtures_ok
@given(q=hostile_text)
def test_the_header_search_answers_any_query(auth_client, book, q):
    before = snapshot()
    response = auth_client.get("/stocks/", {"q": q})
    assert response.status_code in (200, 302, 404)
    if response.status_code == 302:
        assert re.fullmatch(r"/stocks/[A-Z0-9][A-Z0-9.\-]{0,9}/", response["Location"])
    assert SCRIPT not in response.content.decode()
    assert snapshot() == before


# --- accounts -------------------------------------------------------------------------------------
@fixtures_ok
@given(username=hostile_text, password=hostile_text)
def test_a_login_with_anything_fails_cleanly(client, book, username, password):
    before = snapshot()
    response = client.post("/accounts/login/", {"username": username, "password": password})
    assert response.status_code in (200, 429)  # the form again, or the lockout page
    assert "_auth_user_id" not in client.session
    assert snapshot() == before


@fixtures_ok
@given(username=hostile_text, password=hostile_text)
def test_the_admin_login_with_anything_fails_cleanly(client, book, username, password):
    response = client.post("/admin/login/", {"username": username, "password": password})
    assert response.status_code in (200, 429)
    assert "_auth_user_id" not in client.session


@fixtures_ok
@given(username=hostile_text, password=hostile_text)
def test_a_signup_with_anything_and_mismatched_passwords_creates_nobody(
    client, django_user_model, book, username, password
):
    users = django_user_model.objects.count()
    data = {"username": username, "password1": password, "password2": password + "!"}
    response = client.post("/accounts/signup/", data)
    assert response.status_code == 422
    assert django_user_model.objects.count() == users
