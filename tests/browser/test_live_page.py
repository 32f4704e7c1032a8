"""The portfolio page while it stays open, in a real browser: ticker autocomplete in the trade
form and the header search (HTMX fills a <datalist> as the user types), and the live section
picking up a new price by polling, without a page load and without a write."""

import dataclasses
import re
from decimal import Decimal

import pytest
from django.core.cache import cache

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture skips (or fails in CI) and says why
    expect = None

from marketdata.price_cache import current_key
from marketdata.wiring import get_market_data
from portfolios.models import Transaction
from portfolios.services import portfolio_buy, portfolio_create
from tests.browser.conftest import log_in  # noqa: E402

pytestmark = pytest.mark.browser


def test_ticker_autocomplete_and_header_search(
    live_server, page, offline_prices, user, password, browser_problems
):
    expect.set_options(timeout=10_000)
    url = live_server.url
    portfolio = portfolio_create(owner=user, name="Main", opening_deposit=Decimal("10000.00"))
    log_in(page, url, user.username, password)
    page.goto(url + portfolio.get_absolute_url())

    # The trade form's ticker field: typing fills its <datalist> (options are never "visible").
    ticker = page.locator("#id_ticker")
    expect(ticker).to_have_attribute("list", "ticker-options")
    ticker.press_sequentially("app", delay=100)
    expect(page.locator('#ticker-options option[value="AAPL"]')).to_have_count(1)

    # The header search box, likewise; then opening AAPL lands on its stock page.
    search = page.locator("#site-search")
    expect(search).to_have_attribute("list", "site-search-options")
    search.press_sequentially("app", delay=100)
    expect(page.locator('#site-search-options option[value="AAPL"]')).to_have_count(1)
    assert browser_problems == []
    search.fill("AAPL")
    with page.expect_navigation() as landing:
        page.locator("form[role=search]").get_by_role("button", name="Open").click()
    assert landing.value.status == 200
    expect(page).to_have_url(url + "/stocks/AAPL/")
    expect(page.get_by_role("heading", level=1)).to_have_text("AAPL")
    assert browser_problems == []


def test_the_stock_page_draws_its_chart(
    live_server, page, offline_prices, user, password, browser_problems
):
    expect.set_options(timeout=10_000)
    url = live_server.url
    log_in(page, url, user.username, password)
    page.goto(url + "/stocks/AAPL/")
    assert browser_problems == []
    expect(page.locator("#chart-AAPL .main-svg").first).to_be_attached()


def test_live_section_follows_the_price_without_reload(
    live_server, page, offline_prices, user, password, settings, browser_problems
):
    expect.set_options(timeout=10_000)
    ui = dataclasses.replace(settings.PAPERTRADE.ui, poll_interval_seconds=1)
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, ui=ui)
    url = live_server.url
    portfolio = portfolio_create(owner=user, name="Main", opening_deposit=Decimal("10000.00"))
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))
    transactions_before = Transaction.objects.filter(portfolio=portfolio).count()
    assert transactions_before == 2  # the deposit and the buy

    log_in(page, url, user.username, password)
    page.goto(url + portfolio.get_absolute_url())
    live = page.locator("#live")
    expect(live).to_have_attribute("hx-trigger", re.compile(r"^every 1s\b"))
    total = page.locator("#total-value")
    value = page.locator('#holdings tr[data-ticker="AAPL"] td.market-value')
    updated = page.locator("#live .updated time")
    expect(total).to_have_text("$10,000.00")
    expect(value).to_have_text("$1,864.00")
    first_update = updated.inner_text()
    page.evaluate("window.__marker = 1")

    # The price moves (as a refresh would leave it in the cache) while the page stays open.
    point = cache.get(current_key("AAPL")) or get_market_data().get_current_price("AAPL")
    moved = point.replace(price=Decimal("200.0000"), close=Decimal("200.0000"))
    cache.set(current_key("AAPL"), moved, 3600)

    expect(total).to_have_text("$10,136.00")  # 8,136.00 cash + 10 × 200.00
    expect(value).to_have_text("$2,000.00")
    expect(page.locator("#cash")).to_have_text("$8,136.00")
    expect(updated).not_to_have_text(first_update)
    assert page.evaluate("window.__marker") == 1, "the live update reloaded the whole page"
    assert Transaction.objects.filter(portfolio=portfolio).count() == transactions_before
    assert browser_problems == []
