import re
from datetime import date
from decimal import Decimal

import pytest

from marketdata.price_cache import forget_current_prices
from marketdata.tests.factories import store_bars
from portfolios.models import Holding, Portfolio, Transaction
from portfolios.services import portfolio_buy, portfolio_deposit

pytestmark = pytest.mark.django_db


def _url(portfolio, suffix=""):
    return f"/portfolios/{portfolio.pk}/{suffix}"


# --- dashboard and creation -------------------------------------------------------------------
def test_creating_a_portfolio_with_an_opening_deposit(auth_client, user):
    response = auth_client.post("/portfolios/", {"name": "Growth", "opening_deposit": "2500.50"})
    created = Portfolio.objects.get(owner=user, name="Growth")
    assert response.status_code == 302
    assert response["Location"] == f"/portfolios/{created.pk}/"
    assert created.cash == Decimal("2500.50")
    assert created.transactions.get().kind == Transaction.Kind.DEPOSIT


@pytest.mark.parametrize(
    ("deposit", "message"),
    [
        ("1e3", "plain number"),
        ("1,00", "plain number"),  # a comma that is no thousands separator: ambiguous
        ("10,00,000", "plain number"),
        ("1.000,50", "plain number"),
        ("-5", "must be greater than zero"),
        ("-1,000", "must be greater than zero"),
        ("NaN", "plain number"),
        ("10.001", "at most 2 decimal places"),
        ("0", "greater than zero"),
        ("2000000000", "at most 1,000,000,000"),
    ],
)
def test_a_bad_opening_deposit_creates_nothing(auth_client, user, deposit, message):
    response = auth_client.post("/portfolios/", {"name": "Growth", "opening_deposit": deposit})
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Portfolio.objects.filter(owner=user).exists()


@pytest.mark.parametrize(
    ("typed", "cash"), [("10,000", "10000.00"), ("1,000.50", "1000.50"), ("1,234,567", "1234567")]
)
def test_an_opening_deposit_may_have_thousands_separators(auth_client, user, typed, cash):
    response = auth_client.post("/portfolios/", {"name": "Growth", "opening_deposit": typed})
    assert response.status_code == 302
    assert Portfolio.objects.get(owner=user).cash == Decimal(cash)


def test_a_new_portfolio_starts_with_ten_thousand_dollars_filled_in(auth_client):
    body = auth_client.get("/").content.decode()
    assert re.search(r'<input[^>]+name="opening_deposit"[^>]+value="10000.00"', body)


def test_a_duplicate_name_is_refused(auth_client, portfolio):
    response = auth_client.post("/portfolios/", {"name": "Main"})
    assert response.status_code == 422
    assert "already have a portfolio named" in response.content.decode()
    assert Portfolio.objects.filter(owner=portfolio.owner).count() == 1


def test_the_dashboard_shows_each_portfolio_at_market_value(auth_client, portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))
    body = auth_client.get("/").content.decode()
    # $8,136.00 cash + 10 × $186.40
    assert "$10,000.00" in body
    assert "$8,136.00" in body
    assert "$1,864.00" in body


def test_every_page_says_the_prices_are_demo_data(auth_client, aapl):
    body = auth_client.get("/").content.decode()
    banner = body.split('id="demo-banner"')[1].split("</p>")[0]
    assert "Demo data: every price is a real daily close (the latest: Fri 10 Nov 2023)" in banner
    assert "Data: Alpha Vantage, as of 2023-11-10" in banner
    assert body.count("Demo data") == 1  # one banner, no badge or warning besides


# --- the portfolio page -----------------------------------------------------------------------
def test_the_portfolio_page_shows_holdings_with_as_of_and_source(auth_client, portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))
    body = auth_client.get(_url(portfolio)).content.decode()
    assert 'data-ticker="AAPL"' in body
    assert "2023-11-10 16:00 EST" in body  # the close, in New York time
    # Offline the stored close is the demo's price, not a stale one: one banner says so.
    assert "· demo close</small>" in body
    assert "stale" not in body
    # Bought at the latest close: no gain today yet (see test_day_change.py), not the
    # 10 × (186.40 − 182.41) = $39.90 the stock moved since the close before.
    assert '<td class="num ">$0.00 (+0.00%)</td>' in body
    assert "$39.90" not in body
    assert "Updated" in body


def test_a_buy_without_javascript_redirects_with_a_receipt(auth_client, portfolio, aapl):
    response = auth_client.post(
        _url(portfolio, "trade/"), {"side": "BUY", "ticker": "aapl", "quantity": "2.5"}, follow=True
    )
    body = response.content.decode()
    assert response.redirect_chain[-1] == (_url(portfolio), 302)
    assert "Bought 2.5 AAPL at $186.40 " in body  # money as money, not $186.4000
    assert "total $466.00" in body
    holding = Holding.objects.get(portfolio=portfolio)
    assert (holding.ticker, holding.quantity) == ("AAPL", Decimal("2.5"))


def test_a_buy_through_htmx_re_renders_the_panel_and_holdings(auth_client, portfolio, aapl):
    response = auth_client.post(
        _url(portfolio, "trade/"),
        {"side": "BUY", "ticker": "AAPL", "quantity": "10"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="trade-panel",
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert 'id="receipt"' in body and "Bought 10 AAPL" in body
    assert 'id="live"' in body and 'hx-swap-oob="true"' in body
    assert "$8,136.00" in body


def test_a_buy_over_cash_is_refused_beside_the_field(auth_client, portfolio, aapl):
    response = auth_client.post(
        _url(portfolio, "trade/"),
        {"side": "BUY", "ticker": "AAPL", "quantity": "100"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert response.status_code == 422
    assert "Not enough cash: $10,000.00 available, $18,640.00 required, $8,640.00 short." in body
    assert 'id="id_quantity_error"' in body
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("10000.00")
    assert not portfolio.transactions.trades().exists()


def test_a_price_sent_by_the_browser_is_ignored(auth_client, portfolio, aapl):
    auth_client.post(
        _url(portfolio, "trade/"),
        {"side": "BUY", "ticker": "AAPL", "quantity": "1", "price": "0.01"},
    )
    assert portfolio.transactions.trades().get().price == Decimal("186.4000")


def test_a_ticker_without_prices_is_refused_by_name(auth_client, portfolio, aapl):
    response = auth_client.post(
        _url(portfolio, "trade/"), {"side": "BUY", "ticker": "BAC", "quantity": "1"}
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "No price is available for BAC right now" in body
    assert "not a ticker we know" not in body
    assert not portfolio.transactions.trades().exists()


def test_selling_more_than_held_is_refused(auth_client, portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("2"))
    response = auth_client.post(
        _url(portfolio, "trade/"), {"side": "SELL", "ticker": "AAPL", "quantity": "3"}
    )
    assert response.status_code == 422
    assert "Not enough AAPL shares: 2 held, 3 to sell, 1 short." in response.content.decode()
    assert Holding.objects.get(portfolio=portfolio).quantity == Decimal("2")


def test_selling_everything_removes_the_holding(auth_client, portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("2"))
    auth_client.post(_url(portfolio, "trade/"), {"side": "SELL", "ticker": "AAPL", "quantity": "2"})
    assert not Holding.objects.filter(portfolio=portfolio).exists()
    assert 'data-ticker="AAPL"' not in auth_client.get(_url(portfolio)).content.decode()


def test_the_preview_prices_the_order_and_shows_what_is_owned(auth_client, portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("3"))
    body = auth_client.get(
        _url(portfolio, "trade/preview/"), {"side": "SELL", "ticker": "aapl", "quantity": "2"}
    ).content.decode()
    assert "Estimated total: <strong>$372.80</strong>" in body
    assert "You own 3 AAPL." in body
    assert Transaction.objects.filter(portfolio=portfolio).count() == 2  # deposit + buy only


def test_deposit_and_withdraw(auth_client, portfolio):
    auth_client.post(_url(portfolio, "deposit/"), {"deposit-amount": "500.25"})
    auth_client.post(_url(portfolio, "withdraw/"), {"withdraw-amount": "100"})
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("10400.25")


def test_a_withdrawal_over_cash_says_what_is_available(auth_client, portfolio):
    response = auth_client.post(_url(portfolio, "withdraw/"), {"withdraw-amount": "10000.01"})
    assert response.status_code == 422
    assert (
        "Not enough cash: $10,000.00 available, $10,000.01 required, $0.01 short."
        in response.content.decode()
    )
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("10000.00")


def test_renaming(auth_client, portfolio):
    auth_client.post(_url(portfolio, "rename/"), {"name": "Retirement"})
    portfolio.refresh_from_db()
    assert portfolio.name == "Retirement"


def test_deleting_needs_the_name_typed_to_confirm(auth_client, portfolio):
    response = auth_client.post(_url(portfolio, "delete/"), {"confirm": "main"})
    assert response.status_code == 422
    assert Portfolio.objects.filter(pk=portfolio.pk).exists()
    response = auth_client.post(_url(portfolio, "delete/"), {"confirm": "Main"})
    assert response.status_code == 302
    assert not Portfolio.objects.filter(pk=portfolio.pk).exists()


def test_the_history_is_paginated_and_filtered_by_type(auth_client, portfolio, settings):
    for _ in range(30):
        portfolio_deposit(portfolio=portfolio, amount=Decimal("1"))
    body = auth_client.get(_url(portfolio)).content.decode()
    assert "Page 1 of 2" in body
    page2 = auth_client.get(_url(portfolio), {"page": 2}).content.decode()
    assert "Page 2 of 2" in page2
    withdrawals = auth_client.get(_url(portfolio), {"kind": "WITHDRAWAL"}).content.decode()
    assert "No transactions of this type yet." in withdrawals
    fragment = auth_client.get(
        _url(portfolio), {"kind": "DEPOSIT"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="transactions"
    ).content.decode()
    assert fragment.lstrip().startswith('<section id="transactions"')


def test_a_partial_request_computes_only_its_own_region(auth_client, portfolio, aapl):
    """The history's pager and filters render the history alone: no prices, no forms."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from marketdata.testing.cache_calls import CacheCalls

    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("1"))
    with CacheCalls() as calls, CaptureQueriesContext(connection) as queries:
        fragment = auth_client.get(
            _url(portfolio), {"page": 1}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="transactions"
        ).content.decode()
    assert fragment.lstrip().startswith('<section id="transactions"') and "AAPL" in fragment
    assert calls.calls == []  # no price was read: the cache is not asked
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert "marketdata_pricehistory" not in sql and "portfolios_holding" not in sql
    # The whole page does read them.
    with CacheCalls() as calls, CaptureQueriesContext(connection) as queries:
        auth_client.get(_url(portfolio))
    assert calls.calls
    assert "portfolios_holding" in " ".join(q["sql"] for q in queries.captured_queries)


def test_the_live_fragment_polls_without_writing(auth_client, portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("1"))
    count = Transaction.objects.count()
    body = auth_client.get(_url(portfolio, "live/")).content.decode()
    assert body.lstrip().startswith('<section id="live"')
    assert 'hx-trigger="every 30s" data-poll-when-visible' in body  # rests while hidden (app.js)
    assert Transaction.objects.count() == count


def test_the_page_query_count_does_not_grow_with_holdings(
    auth_client, portfolio, django_assert_max_num_queries
):
    tickers = [f"T{i}" for i in range(50)]
    for t in tickers:
        store_bars(t, [(date(2023, 11, 9), "10.0000"), (date(2023, 11, 10), "11.0000")])
        portfolio_buy(portfolio=portfolio, ticker=t, quantity=Decimal("1"))
    auth_client.get(_url(portfolio))  # warm the cache
    with django_assert_max_num_queries(10):
        response = auth_client.get(_url(portfolio))
    assert response.content.decode().count("data-ticker=") == 50


# --- stocks -----------------------------------------------------------------------------------
def test_the_stock_page_charts_history_from_our_own_plotly(auth_client, aapl):
    body = auth_client.get("/stocks/AAPL/").content.decode()
    assert "/static/vendor/plotly-basic.min.js" in body
    assert "cdn" not in body.lower()
    assert "/static/charts.js" in body and 'data-chart="chart-AAPL-figure"' in body
    assert "Split-adjusted" in body and "Not adjusted for dividends" in body
    assert "$186.40" in body


def test_the_stock_page_of_an_unknown_ticker_is_404(auth_client, aapl):
    assert auth_client.get("/stocks/ZZZZ/").status_code == 404
    assert auth_client.get("/stocks/%3Cscript%3E/").status_code == 404


def test_the_header_search_opens_the_stock_page(auth_client, aapl):
    response = auth_client.get("/stocks/", {"q": " aapl "})
    assert response["Location"] == "/stocks/AAPL/"


def test_a_stock_without_stored_prices_says_so_by_name_offline(auth_client, aapl):
    response = auth_client.get("/stocks/BAC/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "No stored prices for BAC. Setting an Alpha Vantage API key would fetch them." in body
    assert "nothing here, or it is not yours" not in body
    assert "Buy BAC" in body  # still a stock page, with its header and links


def test_the_404_page_gives_the_reason_it_was_raised_with(auth_client, other_user):
    body = auth_client.get("/stocks/A%3BB/").content.decode()
    assert 'id="not-found-reason">' in body and "not a ticker" in body.lower()
    # Somebody else's portfolio: the general words, never "it exists but is not yours".
    from portfolios.services import portfolio_create

    theirs = portfolio_create(owner=other_user, name="Theirs")
    response = auth_client.get(f"/portfolios/{theirs.pk}/")
    assert response.status_code == 404
    assert "There is nothing here, or it is not yours to see." in response.content.decode()


def test_a_sell_without_javascript_tells_its_realized_gain(auth_client, portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))  # at 186.40
    store_bars("AAPL", [(date(2023, 11, 13), "190.0000")])
    forget_current_prices(["AAPL"])
    response = auth_client.post(
        _url(portfolio, "trade/"), {"side": "SELL", "ticker": "AAPL", "quantity": "4"}, follow=True
    )
    body = response.content.decode()
    # 4 × (190.00 − 186.40): in the receipt, and in the sell's history row.
    assert "Sold 4 AAPL at $190.00 " in body and "realized gain +$14.40." in body
    row = body.split('id="transactions"')[1].split("<tbody>")[1].split("</tr>")[0]
    assert "Sell" in row and '<td class="num pos">+$14.40</td>' in row


def test_the_preview_shows_the_cash_after_and_warns_before_a_shortfall(
    auth_client, portfolio, aapl
):
    preview = _url(portfolio, "trade/preview/")
    body = auth_client.get(preview, {"side": "BUY", "ticker": "AAPL", "quantity": "10"}).content
    assert 'id="cash-after" class="">$8,136.00</strong>' in body.decode()  # 10,000 − 1,864
    body = auth_client.get(preview, {"side": "BUY", "ticker": "AAPL", "quantity": "60"}).content
    # 60 × 186.40 = 11,184.00: 1,184.00 more than the cash.
    assert "That is $1,184.00 more than the available cash ($10,000.00)." in body.decode()
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("3"))
    body = auth_client.get(preview, {"side": "SELL", "ticker": "AAPL", "quantity": "5"})
    text = body.content.decode()
    assert "You have only 3 AAPL to sell: sell at most that." in text
    assert 'id="sell-all">Sell all 3</a>' in text
    assert not portfolio.transactions.filter(kind="SELL").exists()


def test_a_holdings_sell_link_fills_in_the_shares_owned(auth_client, portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("2.5"))
    body = auth_client.get(_url(portfolio), {"side": "SELL", "ticker": "AAPL", "quantity": "2.5"})
    form = body.content.decode().split('id="trade-form"')[1].split("</form>")[0]
    assert re.search(r'<option value="SELL" selected>', form)
    assert re.search(r'name="quantity" value="2.5"', form)
    nonsense = auth_client.get(_url(portfolio), {"side": "SELL", "quantity": "1e9<x>"})
    assert 'name="quantity" value=' not in nonsense.content.decode().split('id="trade-form"')[1]


def test_an_empty_portfolio_says_deposit_cash_to_start_with_the_form_first(auth_client, user):
    from portfolios.services import portfolio_create

    empty = portfolio_create(owner=user, name="Empty")
    body = auth_client.get(_url(empty)).content.decode()
    assert "Deposit cash to start" in body
    assert body.index('id="deposit-form"') < body.index('id="live"')


def test_an_htmx_sell_receipt_tells_its_realized_gain_as_money(auth_client, portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))  # at 186.40
    store_bars("AAPL", [(date(2023, 11, 13), "190.0000")])
    forget_current_prices(["AAPL"])
    response = auth_client.post(
        _url(portfolio, "trade/"),
        {"side": "SELL", "ticker": "AAPL", "quantity": "4"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="trade-panel",
    )
    receipt = response.content.decode().split('id="receipt"')[1].split("</div>")[0]
    assert "Sold 4 AAPL" in receipt and "$190.00 per share" in receipt
    assert "Total: <strong>$760.00</strong>" in receipt
    assert 'Realized gain: <strong class="pos">+$14.40</strong>' in receipt
