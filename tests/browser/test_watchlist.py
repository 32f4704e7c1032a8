"""A watchlist of one's own in a real browser (PRODUCT §11.3): add AAPL from its stock page,
MSFT from search results and NVDA on the watchlist page, see the three with prices from the
stored demo closes, remove one with the mouse; the refresh plan then serves the two watched
tickers at watchlist priority."""

from datetime import UTC, datetime

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture skips (or fails in CI) and says why
    expect = None

from marketdata.plan import refresh_plan
from portfolios.models import WatchedTicker
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", [1280, 390])
def test_add_three_tickers_see_their_prices_and_remove_one(
    live_server, new_context, offline_prices, user, password, settings, browser_problems, width
):
    from django.core.management import call_command

    expect.set_options(timeout=10_000)
    settings.PAPERTRADE_WATCHLIST = []
    call_command("load_demo_prices", stdout=open("/dev/null", "w"))  # noqa: SIM115
    url = live_server.url
    page = new_context(viewport={"width": width, "height": 900}).new_page()
    log_in(page, url, user.username, password)

    page.goto(url + "/stocks/AAPL/")
    page.get_by_role("button", name="Add to watchlist").click()
    expect(page.get_by_role("button", name="On your watchlist · Remove")).to_be_visible()

    page.goto(url + "/stocks/?q=M")
    page.get_by_role("button", name="Add MSFT to watchlist").click()
    expect(page.locator("#messages")).to_contain_text("MSFT is on your watchlist.")

    page.goto(url + "/watchlist/")
    page.get_by_label("Ticker", exact=True).fill("nvda")
    page.get_by_role("button", name="Add to watchlist").click()
    rows = page.locator("#watchlist tbody tr")
    expect(rows).to_have_count(3)
    for ticker in ("AAPL", "MSFT", "NVDA"):
        row = page.locator(f'#watchlist tr[data-ticker="{ticker}"]')
        expect(row.locator("td.price-cell")).to_contain_text("$")
        expect(row.locator("td.price-cell")).to_contain_text("2025-12-12")
        expect(row.locator("td.line svg")).to_have_count(1)

    page.get_by_role("button", name="Remove MSFT from the watchlist").click()
    expect(page.locator("#messages")).to_contain_text("MSFT is off your watchlist.")
    expect(rows).to_have_count(2)
    expect(page.locator('#watchlist tr[data-ticker="MSFT"]')).to_have_count(0)

    assert set(WatchedTicker.objects.values_list("ticker", flat=True)) == {"AAPL", "NVDA"}
    plan = refresh_plan(now=datetime(2025, 12, 16, 23, tzinfo=UTC))
    reasons = {t.ticker: t.reason for t in plan.tickers}
    assert reasons["AAPL"] == reasons["NVDA"] == "watched"
    assert reasons.get("MSFT") != "watched"
    assert browser_problems == []
