"""What a person meets, in a real browser with real mouse clicks: charts that survive every htmx
swap without covering a control, and the offline demo's twenty stocks."""

import dataclasses
import re
from decimal import Decimal

import pytest
from django.core.management import call_command

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture skips (or fails in CI) and says why
    expect = None

from marketdata.models import PriceHistory
from portfolios.models import Transaction
from portfolios.services import portfolio_buy, portfolio_create
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(settings, transactional_db):
    """The offline demo as `make run` sets it up: no key, the bundled twenty stocks."""
    settings.ALPHA_VANTAGE_API_KEY = ""
    call_command("load_demo_prices", verbosity=0)
    return sorted(PriceHistory.objects.values_list("ticker", flat=True).distinct())


def fast_polling(settings, seconds: int = 1) -> None:
    ui = dataclasses.replace(settings.PAPERTRADE.ui, poll_interval_seconds=seconds)
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, ui=ui)


def count_settles(page, selector: str) -> None:
    """Count, in ``window.__settled``, the htmx swaps that settle into ``selector``."""
    page.evaluate(
        """(selector) => {
          window.__settled = 0;
          document.addEventListener("htmx:afterSettle", (e) => {
            if (e.target.matches && e.target.matches(selector)) window.__settled += 1;
          });
        }""",
        selector,
    )


def assert_nothing_stale(page) -> None:
    expect(page.locator(".stale")).to_have_count(0)
    assert "stale" not in page.locator("body").inner_text().lower()


def assert_drawn(page, chart_id: str) -> None:
    """The chart is drawn and styled: Plotly's class on it and its layers positioned inside it,
    so none spreads over the page."""
    chart = page.locator(f'[id="{chart_id}"]')
    expect(chart).to_have_class(re.compile(r"\bjs-plotly-plot\b"))
    expect(chart.locator(".main-svg").first).to_be_attached()
    position = chart.locator(".main-svg").first.evaluate("e => getComputedStyle(e).position")
    assert position == "absolute"  # Plotly's stylesheet applies: its layers stack in the chart
    box, container = chart.bounding_box(), chart.locator(".plot-container").bounding_box()
    assert container["height"] <= box["height"] + 1


@pytest.mark.parametrize("width", [1280, 390])
def test_controls_take_clicks_after_live_refreshes_and_a_range_switch(
    live_server, new_context, demo, user, password, settings, browser_problems, width
):
    expect.set_options(timeout=10_000)
    fast_polling(settings)
    url = live_server.url
    portfolio = portfolio_create(owner=user, name="Main", opening_deposit=Decimal("10000.00"))
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))
    portfolio_buy(portfolio=portfolio, ticker="MSFT", quantity=Decimal("2"))
    page = new_context(viewport={"width": width, "height": 900}).new_page()
    log_in(page, url, user.username, password)

    # The stock page: switch the chart's range (an htmx swap of the chart), then hover it.
    page.goto(url + "/stocks/MSFT/")
    assert_drawn(page, "chart-MSFT")
    count_settles(page, "#chart")
    page.get_by_role("link", name="3M", exact=True).click()
    page.wait_for_function("() => window.__settled >= 1")
    expect(page.get_by_role("link", name="3M", exact=True)).to_have_attribute(
        "aria-current", "true"
    )
    assert_drawn(page, "chart-MSFT")
    page.locator("#chart-MSFT").scroll_into_view_if_needed()
    chart = page.locator("#chart-MSFT").bounding_box()
    page.mouse.move(chart["x"] + chart["width"] * 0.6, chart["y"] + chart["height"] * 0.5)
    hover = page.locator("#chart-MSFT .hovertext").first
    expect(hover).to_be_attached()
    label = hover.text_content()  # an SVG text: no inner_text
    assert re.search(r"(?<!\$)\$\d{3}\.\d{2}\b", label) and "$$" not in label, label
    # The buy shortcut under the chart takes a real click.
    page.get_by_role("link", name="Buy in Main").click()
    expect(page).to_have_url(re.compile(rf"/portfolios/{portfolio.pk}/\?side=BUY&ticker=MSFT"))

    # The portfolio page past two live refreshes: the allocation chart is drawn anew each time.
    assert_drawn(page, "allocation-chart")
    count_settles(page, "#live")
    page.wait_for_function("() => window.__settled >= 2", timeout=10_000)
    assert_drawn(page, "allocation-chart")

    # A buy with real mouse clicks through the trade form (htmx), then a deposit (a plain form).
    page.locator("#id_ticker").click()
    page.locator("#id_ticker").fill("NVDA")
    page.locator("#id_quantity").click()
    page.locator("#id_quantity").fill("3")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator("#receipt")).to_contain_text("Bought 3 NVDA")
    page.wait_for_function("() => window.__settled >= 3", timeout=10_000)  # and one more refresh
    assert_drawn(page, "allocation-chart")
    page.locator("#id_deposit-amount").click()
    page.locator("#id_deposit-amount").fill("250")
    with page.expect_navigation():
        page.locator("#deposit-form").get_by_role("button", name="Deposit").click()
    kinds = list(
        Transaction.objects.filter(portfolio=portfolio).order_by("id").values_list("kind", "ticker")
    )
    assert kinds[-2:] == [("BUY", "NVDA"), ("DEPOSIT", "")]
    assert_drawn(page, "allocation-chart")
    assert browser_problems == []


def test_every_demo_stock_page_draws_a_chart_and_no_price_is_stale(
    live_server, page, demo, user, password, browser_problems
):
    expect.set_options(timeout=10_000)
    url = live_server.url
    assert len(demo) == 20
    portfolio = portfolio_create(owner=user, name="Main", opening_deposit=Decimal("100000.00"))
    for ticker in demo[:5]:
        portfolio_buy(portfolio=portfolio, ticker=ticker, quantity=Decimal("1"))
    log_in(page, url, user.username, password)
    expect(page.locator("#demo-banner")).to_contain_text("Data: Alpha Vantage, as of 2025-12-12")
    assert_nothing_stale(page)
    page.goto(url + portfolio.get_absolute_url())
    expect(page.locator("#holdings .as-of").first).to_contain_text("2025-12-12 16:00 EST")
    expect(page.locator("#holdings .as-of").first).to_contain_text("demo close")
    assert_nothing_stale(page)
    for ticker in demo:
        page.goto(f"{url}/stocks/{ticker}/")
        assert_drawn(page, f"chart-{ticker}")
        expect(page.locator(".quote .as-of")).to_contain_text("2025-12-12")
        assert_nothing_stale(page)
    assert browser_problems == []


def test_a_failing_order_says_so_on_the_page_and_keeps_the_form(
    live_server, page, demo, user, password, monkeypatch, browser_problems
):
    expect.set_options(timeout=10_000)
    url = live_server.url
    portfolio = portfolio_create(owner=user, name="Main", opening_deposit=Decimal("10000.00"))
    log_in(page, url, user.username, password)
    page.goto(url + portfolio.get_absolute_url())

    def broken(**kwargs):
        raise RuntimeError("the ledger is on fire")

    # The server itself answers 500: the view's write fails (the live server runs in-process).
    monkeypatch.setattr("portfolios.services.portfolio_buy", broken)
    page.locator("#id_ticker").fill("AAPL")
    page.locator("#id_quantity").fill("2")
    page.get_by_role("button", name="Place order").click()
    alert = page.locator("#messages [role=alert]")
    expect(alert).to_contain_text("could not complete the request (error 500)")
    expect(alert).to_contain_text("What you entered is still there")
    expect(page.locator("#id_ticker")).to_have_value("AAPL")
    expect(page.locator("#id_quantity")).to_have_value("2")
    expect(page.get_by_role("button", name="Place order")).to_be_enabled()
    assert browser_problems == [f"500 from POST {url}/portfolios/{portfolio.pk}/trade/"]
    browser_problems.clear()

    # No answer at all (the connection drops): said too, and the same message is replaced.
    monkeypatch.undo()
    page.route("**/trade/", lambda route: route.abort("connectionreset"))
    page.get_by_role("button", name="Place order").click()
    expect(alert).to_have_text(re.compile("could not be reached"))
    expect(alert).to_have_count(1)
    page.unroute("**/trade/")

    # While in flight the button is disabled; once it lands the message goes.
    page.route("**/trade/", lambda route: (page.wait_for_timeout(600), route.continue_()))
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_role("button", name="Place order")).to_be_disabled()
    expect(page.locator("#receipt")).to_contain_text("Bought 2 AAPL")
    expect(alert).to_have_count(0)
    assert Transaction.objects.filter(portfolio=portfolio, kind="BUY").count() == 1
    assert browser_problems == []
