"""The stock page's chart in a real browser: a range button redraws the chart alone (htmx swaps
the fragment and runs its inline Plotly script), without reloading the page."""

from datetime import date, timedelta

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture skips (or fails in CI) and says why
    expect = None

from marketdata.tests.factories import store_series
from tests.browser.conftest import log_in  # noqa: E402

pytestmark = pytest.mark.browser

LAST_DAY = date(2023, 11, 10)
# How many points the chart's Plotly div is drawing (-1 before Plotly has drawn it).
POINTS = (
    "(() => { const gd = document.getElementById('chart-CHRT');"
    " return gd && gd.data ? gd.data[0].x.length : -1; })()"
)


def weekdays(start: date, end: date) -> int:
    return sum((start + timedelta(days=i)).weekday() < 5 for i in range((end - start).days + 1))


def test_a_range_button_redraws_the_chart_without_a_reload(
    live_server, page, offline_prices, user, password, browser_problems
):
    expect.set_options(timeout=10_000)
    store_series("CHRT", LAST_DAY, [f"{50 + i / 10:.4f}" for i in range(600)])
    year = weekdays(date(2022, 11, 11), LAST_DAY)
    quarter = weekdays(date(2023, 8, 11), LAST_DAY)
    url = live_server.url
    log_in(page, url, user.username, password)

    page.goto(url + "/stocks/CHRT/")
    expect(page.locator("#chart-CHRT .main-svg").first).to_be_attached()
    assert page.evaluate(POINTS) == year
    ranges = page.get_by_role("navigation", name="Chart range")
    expect(ranges.get_by_role("link", name="1Y")).to_have_attribute("aria-current", "true")
    page.evaluate("window.__marker = 1; window.__chart = document.getElementById('chart-CHRT')")

    ranges.get_by_role("link", name="3M").click()
    expect(ranges.get_by_role("link", name="3M")).to_have_attribute("aria-current", "true")
    expect(ranges.get_by_role("link", name="1Y")).not_to_have_attribute("aria-current", "true")
    page.wait_for_function(f"() => {POINTS} === {quarter}")
    expect(page.locator("#chart-CHRT .main-svg").first).to_be_attached()
    assert page.evaluate("document.getElementById('chart-CHRT') !== window.__chart")
    assert page.evaluate("window.__marker") == 1, "the range button reloaded the whole page"
    expect(page).to_have_url(url + "/stocks/CHRT/?range=3M")

    # Back: the year's chart again, drawn (the page is fetched afresh, not restored from a
    # snapshot of a drawn chart).
    page.go_back()
    expect(page).to_have_url(url + "/stocks/CHRT/")
    page.wait_for_function(f"() => {POINTS} === {year}")
    expect(ranges.get_by_role("link", name="1Y")).to_have_attribute("aria-current", "true")
    assert browser_problems == []


# What the NFLX chart draws: its first and its smallest day-over-day ratio of closes.
NFLX_MOVES = (
    "(() => { const gd = document.getElementById('chart-NFLX');"
    " if (!gd || !gd.data) return null; const y = gd.data[0].y.map(Number);"
    " let worst = 1; for (let i = 1; i < y.length; i++) worst = Math.min(worst, y[i] / y[i-1]);"
    " return worst; })()"
)


@pytest.mark.parametrize("width", [1280, 390])
def test_the_split_switch_redraws_nflx_as_traded_and_back(
    live_server, new_context, offline_prices, user, password, browser_problems, width
):
    """The bundled demo: NFLX's 10-for-1 split on 2025-11-17 is invisible in the adjusted chart
    (the default) and a marked cliff as traded; real clicks switch between them."""
    from django.core.management import call_command

    expect.set_options(timeout=10_000)
    call_command("load_demo_prices", stdout=open("/dev/null", "w"))  # noqa: SIM115
    url = live_server.url
    page = new_context(viewport={"width": width, "height": 900}).new_page()
    log_in(page, url, user.username, password)

    page.goto(url + "/stocks/NFLX/?range=ALL")
    expect(page.locator("#chart-NFLX .main-svg").first).to_be_attached()
    page.wait_for_function(f"() => {NFLX_MOVES} !== null")
    assert page.evaluate(NFLX_MOVES) > 0.85  # no day lost more than 15 %
    prices = page.get_by_role("navigation", name="Prices")
    expect(prices.get_by_role("link", name="Split-adjusted")).to_have_attribute(
        "aria-current", "true"
    )
    expect(page.locator("#chart-note")).to_contain_text("10-for-1 split on Mon 17 Nov 2025")

    prices.get_by_role("link", name="As traded").click()
    expect(prices.get_by_role("link", name="As traded")).to_have_attribute("aria-current", "true")
    page.wait_for_function(f"() => {NFLX_MOVES} !== null && {NFLX_MOVES} < 0.2")
    expect(page.locator("#chart-NFLX .annotation-text").first).to_contain_text("10-for-1 split")
    expect(page).to_have_url(url + "/stocks/NFLX/?prices=traded&range=ALL")

    prices.get_by_role("link", name="Split-adjusted").click()
    page.wait_for_function(f"() => {NFLX_MOVES} !== null && {NFLX_MOVES} > 0.85")
    # The range buttons keep the chosen prices.
    ranges = page.get_by_role("navigation", name="Chart range")
    ranges.get_by_role("link", name="1M").click()
    expect(ranges.get_by_role("link", name="1M")).to_have_attribute("aria-current", "true")
    expect(prices.get_by_role("link", name="Split-adjusted")).to_have_attribute(
        "aria-current", "true"
    )
    assert browser_problems == []
