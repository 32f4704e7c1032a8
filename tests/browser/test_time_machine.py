"""A time-machine portfolio in a real browser (PRODUCT §10.2): start on 2025-07-24 with
$10,000, buy 10 AAPL at that day's close, move the clock to 2025-12-12 and see the portfolio
valued at that day's close; the clock refuses to go back or past the stored history."""

from decimal import Decimal

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture skips (or fails in CI) and says why
    expect = None

from portfolios.models import Portfolio
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser

AAPL_0724, AAPL_1212 = Decimal("213.76"), Decimal("278.28")  # data/prices/AAPL.csv
AAPL_DIVIDENDS = Decimal("0.26") * 2 * 10  # paid 2025-08-14 and 2025-11-13 on 10 shares


def money(value: Decimal) -> str:
    return f"${value:,.2f}"


@pytest.mark.parametrize("width", [1280, 390])
def test_a_portfolio_that_starts_in_the_past(
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

    page.get_by_label("Name").fill("Summer 2025")
    expect(page.get_by_label("Opening deposit (optional)")).to_have_value("10000.00")
    page.get_by_label("Start in the past (optional)").fill("2025-07-24")
    page.get_by_role("button", name="Create portfolio").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Summer 2025")
    expect(page.locator("#clock-date")).to_have_text("Thu 24 Jul 2025")

    trade = page.locator("#trade-form")
    trade.get_by_label("Side").select_option("BUY")
    trade.get_by_label("Ticker").fill("AAPL")
    trade.get_by_label("Quantity").fill("10")
    trade.get_by_role("button", name="Place order").click()
    expect(page.locator("#receipt")).to_contain_text("Bought 10 AAPL")
    expect(page.locator("#receipt")).to_contain_text(money(10 * AAPL_0724))
    row = page.locator('#holdings tr[data-ticker="AAPL"]')
    expect(row.locator("td.price-cell")).to_contain_text("2025-07-24")

    # Past two live refreshes and a swap of the value chart's range, the clock's buttons still
    # take real clicks.
    count_settles(page, "#live")
    page.wait_for_function("() => window.__settled >= 2", timeout=10_000)
    assert_drawn(page, "value-chart")
    page.get_by_role("navigation", name="Value range").get_by_role("link", name="1M").click()
    expect(
        page.get_by_role("navigation", name="Value range").get_by_role("link", name="1M")
    ).to_have_attribute("aria-current", "true")
    assert_drawn(page, "value-chart")
    page.locator("#clock-form").get_by_role("button", name="Next week").click()
    expect(page.locator("#clock-date")).to_have_text("Thu 31 Jul 2025")

    clock = page.locator("#clock-form")
    clock.get_by_label("Go to date").fill("2025-12-12")
    clock.get_by_role("button", name="Go to date").click()
    expect(page.locator("#clock-date")).to_have_text("Fri 12 Dec 2025")
    cash = Decimal(10_000) - 10 * AAPL_0724 + AAPL_DIVIDENDS
    expect(page.locator("#cash")).to_have_text(money(cash))
    expect(page.locator("#total-value")).to_have_text(money(cash + 10 * AAPL_1212))
    expect(row.locator("td.price-cell")).to_contain_text("2025-12-12")

    # The value chart loads, with the returns under it.
    expect(page.locator("#value-chart .main-svg").first).to_be_attached()
    expect(page.locator("#returns")).to_contain_text("Time-weighted")

    # Back in time, or past the stored history: refused, and the clock stays.
    clock = page.locator("#clock-form")
    clock.get_by_label("Go to date").fill("2025-07-25")
    clock.get_by_role("button", name="Go to date").click()
    expect(page.locator("#clock")).to_contain_text("The clock only moves forward")
    clock = page.locator("#clock-form")
    clock.get_by_label("Go to date").fill("2025-12-15")
    clock.get_by_role("button", name="Go to date").click()
    expect(page.locator("#clock")).to_contain_text("latest stored session is Fri 12 Dec 2025")
    expect(page.locator("#clock-date")).to_have_text("Fri 12 Dec 2025")
    assert Portfolio.objects.get(name="Summer 2025").clock.isoformat() == "2025-12-12"

    page.goto(url + "/")
    expect(page.locator("table")).to_contain_text("time machine · Fri 12 Dec 2025")
    assert browser_problems == []
