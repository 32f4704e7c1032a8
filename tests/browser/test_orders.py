"""Limit orders in a real browser (PRODUCT §11.1, §11.2), on a time-machine portfolio started on
2025-07-24 with $10,000: a buy limit at $212 under AAPL's close ($213.76) reserves its cash; a
second order (MSFT) is cancelled with the mouse and its reserve is released; moving the clock to
Tue 29 Jul 2025, whose low ($210.82) crosses the limit after an open above it ($214.175), fills
the order at the limit, "limit, touched", and releases the reserve. At 1280 and 390 px."""

from decimal import Decimal

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture skips (or fails in CI) and says why
    expect = None

from portfolios.models import Order, Transaction
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser


def money(value: Decimal) -> str:
    return f"${value:,.2f}"


@pytest.mark.parametrize("width", [1280, 390])
def test_a_limit_buy_waits_fills_as_the_clock_crosses_its_price_and_a_cancel_frees_cash(
    live_server, new_context, offline_prices, user, password, settings, browser_problems, width
):
    from django.core.management import call_command

    from tests.browser.test_surface import assert_drawn, count_settles, fast_polling

    expect.set_options(timeout=10_000)
    fast_polling(settings)
    call_command("load_demo_prices", stdout=open("/dev/null", "w"))  # noqa: SIM115
    url = live_server.url
    page = new_context(viewport={"width": width, "height": 900}).new_page()
    log_in(page, url, user.username, password)
    page.get_by_label("Name").fill("Orders 2025")
    page.get_by_label("Start in the past (optional)").fill("2025-07-24")
    page.get_by_role("button", name="Create portfolio").click()
    expect(page.locator("#clock-date")).to_have_text("Thu 24 Jul 2025")

    trade = page.locator("#trade-form")
    # A market order shows no limit or stop price: the order type decides.
    expect(trade.get_by_label("Limit price ($)")).to_be_hidden()
    trade.get_by_label("Ticker").fill("AAPL")
    trade.get_by_label("Quantity").fill("10")
    trade.get_by_label("Order type").select_option("LIMIT")
    expect(trade.get_by_label("Limit price ($)")).to_be_visible()
    expect(trade.get_by_label("Stop price ($)")).to_be_hidden()
    trade.get_by_label("Limit price ($)").fill("212.00")
    trade.get_by_label("Time in force").select_option("GTC")
    expect(page.locator("#order-reserve")).to_contain_text("reserves $2,120.00")
    trade.get_by_role("button", name="Place order").click()
    expect(page.locator("#order-placed")).to_contain_text("Buy 10 AAPL, limit $212.00, GTC")
    expect(page.locator("#available-cash")).to_have_text(money(Decimal("7880")))
    expect(page.locator("#cash")).to_have_text(money(Decimal("10000")))

    trade = page.locator("#trade-form")
    trade.get_by_label("Ticker").fill("MSFT")
    trade.get_by_label("Quantity").fill("2")
    trade.get_by_label("Order type").select_option("LIMIT")
    trade.get_by_label("Limit price ($)").fill("400")
    trade.get_by_role("button", name="Place order").click()
    expect(page.locator("#order-placed")).to_contain_text("Buy 2 MSFT, limit $400.00, Day")
    expect(page.locator("#available-cash")).to_have_text(money(Decimal("7080")))
    orders = page.locator("#open-orders")
    expect(orders.locator("tbody tr")).to_have_count(2)

    # Cancel the MSFT order with the mouse, after two live refreshes have swapped the open
    # orders (they live in the polled region) and the value chart's range was switched: its
    # $800.00 is available again.
    count_settles(page, "#live")
    page.wait_for_function("() => window.__settled >= 2", timeout=10_000)
    ranges = page.get_by_role("navigation", name="Value range")
    ranges.get_by_role("link", name="1M").click()
    expect(ranges.get_by_role("link", name="1M")).to_have_attribute("aria-current", "true")
    assert_drawn(page, "value-chart")
    page.get_by_role("button", name="Cancel order for MSFT").click()
    expect(page.locator("#messages")).to_contain_text("Cancelled: Buy 2 MSFT")
    expect(page.locator("#messages")).to_contain_text("$800.00 is available again.")
    expect(page.locator("#available-cash")).to_have_text(money(Decimal("7880")))
    expect(page.locator("#open-orders tbody tr")).to_have_count(1)
    expect(page.get_by_role("button", name="Cancel order for AAPL")).to_be_visible()

    # Through Fri 25 and Mon 28 Jul (lows 213.40, 213.06) the order waits; Tue 29 fills it.
    clock = page.locator("#clock-form")
    clock.get_by_label("Go to date").fill("2025-07-28")
    clock.get_by_role("button", name="Go to date").click()
    expect(page.locator("#clock-date")).to_have_text("Mon 28 Jul 2025")
    expect(page.locator("#open-orders tbody tr")).to_have_count(1)
    page.locator("#clock-form").get_by_role("button", name="Next day").click()
    expect(page.locator("#clock-date")).to_have_text("Tue 29 Jul 2025")
    expect(page.locator("#messages")).to_contain_text("Orders on the way: 1 filled.")

    expect(page.locator("#orders")).to_contain_text("No open orders")
    expect(page.locator("#available-cash")).to_have_count(0)  # nothing reserved any more
    expect(page.locator("#cash")).to_have_text(money(Decimal("7880")))
    history = page.locator("#transactions")
    fill_row = history.locator("tbody tr", has_text="Buy").first
    expect(fill_row).to_contain_text("$212.00")
    expect(fill_row).to_contain_text("limit, touched")
    expect(fill_row).to_contain_text("2025-07-29")
    expect(page.locator('#holdings tr[data-ticker="AAPL"]')).to_contain_text("10")

    fill = Transaction.objects.get(kind="BUY")
    assert (fill.price, fill.price_rule) == (Decimal("212.0000"), "limit, touched")
    assert set(Order.objects.values_list("ticker", "status")) == {
        ("AAPL", "FILLED"),
        ("MSFT", "CANCELLED"),
    }
    assert browser_problems == []
