"""The product's first five minutes, in a real browser: sign up, fund a portfolio, buy a stock
(in place, through HTMX), be refused a trade the cash cannot cover; and the same basics with
JavaScript switched off."""

from decimal import Decimal

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture skips (or fails in CI) and says why
    expect = None

from portfolios.models import Portfolio, Transaction

pytestmark = pytest.mark.browser


def holding_row(page, ticker: str):
    return page.locator(f'#holdings tr[data-ticker="{ticker}"]')


def test_sign_up_fund_and_trade_in_place(live_server, page, offline_prices, browser_problems):
    expect.set_options(timeout=10_000)
    url = live_server.url

    # A stranger sees what the app is, and signs up from there.
    page.goto(url + "/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("virtual money")
    page.get_by_role("main").get_by_role("link", name="Sign up", exact=True).click()
    expect(page).to_have_url(url + "/accounts/signup/")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password", exact=True).fill("a-long-unusual-passphrase-42")
    page.get_by_label("Password confirmation").fill("a-long-unusual-passphrase-42")
    page.get_by_role("button", name="Sign up").click()

    # The dashboard, then a new empty portfolio.
    expect(page).to_have_url(url + "/")
    expect(page.get_by_role("heading", name="Your portfolios")).to_be_visible()
    page.get_by_label("Name").fill("Growth")
    opening = page.get_by_label("Opening deposit (optional)")
    expect(opening).to_have_value("10000.00")  # a real default, cleared here: deposit below
    opening.fill("")
    page.get_by_role("button", name="Create portfolio").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Growth")
    portfolio = Portfolio.objects.get(owner__username="carol", name="Growth")
    expect(page).to_have_url(url + portfolio.get_absolute_url())
    expect(page.locator("#cash")).to_have_text("$0.00")

    # Deposit (an ordinary post and redirect).
    deposit = page.locator("#deposit-form")
    deposit.get_by_label("Amount ($)").fill("10000")
    deposit.get_by_role("button", name="Deposit").click()
    expect(page.locator("#cash")).to_have_text("$10,000.00")

    # Buy 10 AAPL: the trade panel and the totals change in place, without a page load.
    trade = page.locator("#trade-form")
    trade.get_by_label("Side").select_option("BUY")
    trade.get_by_label("Ticker").fill("AAPL")
    trade.get_by_label("Quantity").fill("10")
    page.evaluate("window.__marker = 1")
    trade.get_by_role("button", name="Place order").click()

    receipt = page.locator("#receipt")
    expect(receipt).to_contain_text("Bought 10 AAPL")
    expect(receipt).to_contain_text("$1,864.00")
    row = holding_row(page, "AAPL")
    expect(row.locator("td").nth(0)).to_have_text("10")
    expect(row.locator("td.market-value")).to_have_text("$1,864.00")
    expect(row.locator("td.price-cell")).to_contain_text("2023-11-10")
    expect(page.locator("#cash")).to_have_text("$8,136.00")
    assert page.evaluate("window.__marker") == 1, "the buy reloaded the whole page"

    # Too big an order: refused beside the quantity, and nothing changes.
    transactions_before = Transaction.objects.filter(portfolio=portfolio).count()
    assert transactions_before == 2  # the deposit and the buy
    trade = page.locator("#trade-form")
    trade.get_by_label("Side").select_option("BUY")
    trade.get_by_label("Ticker").fill("AAPL")
    trade.get_by_label("Quantity").fill("1000")
    trade.get_by_role("button", name="Place order").click()

    quantity_field = page.locator("#trade-form .field").filter(has=page.locator("#id_quantity"))
    error = quantity_field.locator(".errors")
    expect(error).to_contain_text("Not enough cash")
    expect(error).to_contain_text("$8,136.00 available")
    expect(error).to_contain_text("short")
    expect(page.locator("#receipt")).to_have_count(0)
    expect(page.locator("#cash")).to_have_text("$8,136.00")
    expect(row.locator("td").nth(0)).to_have_text("10")
    assert page.evaluate("window.__marker") == 1, "the refused order reloaded the whole page"

    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal("8136.00")
    assert Transaction.objects.filter(portfolio=portfolio).count() == transactions_before
    assert browser_problems == []


def test_log_in_deposit_and_buy_without_javascript(
    live_server, new_context, offline_prices, django_user_model, browser_problems
):
    expect.set_options(timeout=10_000)
    django_user_model.objects.create_user(username="dave", password="another-long-passphrase-7")
    page = new_context(java_script_enabled=False).new_page()
    url = live_server.url

    page.goto(url + "/accounts/login/")
    page.get_by_label("Username").fill("dave")
    page.get_by_label("Password").fill("another-long-passphrase-7")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(url + "/")

    page.get_by_label("Name").fill("Plain")
    page.get_by_label("Opening deposit (optional)").fill("")
    page.get_by_role("button", name="Create portfolio").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Plain")

    deposit = page.locator("#deposit-form")
    deposit.get_by_label("Amount ($)").fill("10000")
    deposit.get_by_role("button", name="Deposit").click()
    expect(page.locator("#cash")).to_have_text("$10,000.00")

    trade = page.locator("#trade-form")
    trade.get_by_label("Side").select_option("BUY")
    trade.get_by_label("Ticker").fill("AAPL")
    trade.get_by_label("Quantity").fill("10")
    trade.get_by_role("button", name="Place order").click()

    portfolio = Portfolio.objects.get(owner__username="dave", name="Plain")
    expect(page).to_have_url(url + portfolio.get_absolute_url())
    expect(page.locator("#messages")).to_contain_text("Bought 10 AAPL")
    expect(page.locator("#messages")).to_contain_text("total $1,864.00")
    row = holding_row(page, "AAPL")
    expect(row.locator("td").nth(0)).to_have_text("10")
    expect(row.locator("td.market-value")).to_have_text("$1,864.00")
    expect(row.locator("td.price-cell")).to_contain_text("2023-11-10")
    expect(page.locator("#cash")).to_have_text("$8,136.00")
    assert browser_problems == []
