"""Every page, in a real browser: no serious or critical axe-core violation in the light or the
dark colour scheme, and no sideways scrolling at a phone's width (390 px)."""

import re
from decimal import Decimal

import pytest
from django.core.management import call_command

try:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture skips (or fails in CI) and says why
    Axe = expect = None

from portfolios.services import portfolio_buy, portfolio_create
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
PLOTTED = re.compile(r"\bjs-plotly-plot\b")  # a chart drawn: check it as it is seen


@pytest.fixture
def world(settings, transactional_db, user, django_user_model, password):
    """The offline demo with a portfolio holding three stocks, a staff member, and the pages."""
    settings.ALPHA_VANTAGE_API_KEY = ""
    call_command("load_demo_prices", verbosity=0)
    portfolio = portfolio_create(owner=user, name="Main", opening_deposit=Decimal("10000.00"))
    for ticker, quantity in (("AAPL", "10"), ("NVDA", "5"), ("BRK.B", "1.5")):
        portfolio_buy(portfolio=portfolio, ticker=ticker, quantity=Decimal(quantity))
    from datetime import date

    from portfolios.models import WatchedTicker

    machine = portfolio_create(
        owner=user, name="Time machine", opening_deposit=Decimal("5000"), starts_on=date(2025, 9, 2)
    )
    portfolio_buy(portfolio=machine, ticker="MSFT", quantity=Decimal("2"))
    # Open and closed orders: the page's orders sections, the reserves and the rule in the
    # history are checked too.
    from portfolios.orders import order_cancel, order_place
    from portfolios.services import portfolio_advance

    def order(side: str, kind: str, ticker: str, quantity: str, trigger: str):
        return order_place(
            portfolio=machine,
            side=side,
            kind=kind,
            ticker=ticker,
            quantity=Decimal(quantity),
            trigger=Decimal(trigger),
            time_in_force="GTC",
        )

    order("BUY", "LIMIT", "MSFT", "1", "1.00")
    order("SELL", "STOP", "MSFT", "1", "1.00")
    order_cancel(portfolio=machine, order_id=order("BUY", "LIMIT", "AAPL", "1", "100").pk)
    order("BUY", "LIMIT", "NVDA", "1", "1000")  # marketable: fills at the next session's open
    portfolio_advance(portfolio=machine, to=date(2025, 9, 3))
    for ticker in ("MSFT", "NFLX", "IBM"):
        WatchedTicker.objects.create(owner=user, ticker=ticker)
    staff = django_user_model.objects.create_user(
        username="sam", password=password, is_staff=True, is_superuser=True
    )
    return {
        "portfolio": portfolio,
        "staff": staff,
        "pages": {
            "dashboard": "/",
            "portfolio": portfolio.get_absolute_url(),
            "empty portfolio": portfolio_create(owner=user, name="Empty").get_absolute_url(),
            "stock": "/stocks/NVDA/",
            "stock without prices": "/stocks/IBM/",
            "search": "/stocks/?q=b",
            "time machine": machine.get_absolute_url(),
            "watchlist": "/watchlist/",
            "stock as traded": "/stocks/NFLX/?prices=traded&range=ALL",
            "not found": "/portfolios/999999/",
        },
    }


def visit(page, url: str) -> None:
    """Open ``url`` and wait until its chart, if it has one, is drawn: check it as it is seen."""
    page.goto(url)
    if page.locator("[data-chart]").count():
        expect(page.locator("[data-chart]").first).to_have_class(PLOTTED)


def serious(page) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    results = Axe().run(page)
    found = []
    for violation in results.response["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [", ".join(node["target"]) for node in violation["nodes"][:3]]
            found.append(
                f"{violation['id']} ({violation['impact']}): {violation['help']} {targets}"
            )
    return found


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_page_has_a_serious_accessibility_violation(
    live_server, new_context, world, user, password, scheme, browser_problems
):
    expect.set_options(timeout=10_000)
    url = live_server.url
    anonymous = new_context(color_scheme=scheme).new_page()
    problems = {}
    for name, path in (
        ("landing", "/"),
        ("log in", "/accounts/login/"),
        ("sign up", "/accounts/signup/"),
    ):
        anonymous.goto(url + path)
        problems[name] = serious(anonymous)

    page = new_context(color_scheme=scheme).new_page()
    log_in(page, url, user.username, password)
    for name, path in world["pages"].items():
        visit(page, url + path)
        problems[name] = serious(page)

    # The scheme is followed, charts included: their background is the card's.
    page.goto(url + world["pages"]["stock"])
    expect(page.locator("#chart-NVDA")).to_have_class(PLOTTED)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    card = page.evaluate("getComputedStyle(document.querySelector('.card')).backgroundColor")
    paper = page.locator("#chart-NVDA .main-svg").first.evaluate("e => e.style.background")
    assert background == ("rgb(13, 17, 23)" if scheme == "dark" else "rgb(246, 248, 250)")
    assert paper == card

    staff = new_context(color_scheme=scheme).new_page()
    log_in(staff, url, "sam", password)
    staff.goto(url + "/market-data/status/")
    problems["status"] = serious(staff)
    assert {name: found for name, found in problems.items() if found} == {}
    assert [p for p in browser_problems if not p.startswith("404 ")] == []


def overflow(page) -> int:
    """How far the page scrolls sideways, in CSS pixels (0: it does not)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_no_page_scrolls_sideways_on_a_phone(
    live_server, new_context, world, user, password, browser_problems
):
    expect.set_options(timeout=10_000)
    url = live_server.url
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    page.goto(url + "/")
    widths = {"landing": overflow(page)}
    log_in(page, url, user.username, password)
    for name, path in world["pages"].items():
        visit(page, url + path)
        widths[name] = overflow(page)
    assert {name: px for name, px in widths.items() if px > 0} == {}
    # The header fits: brand, search and navigation all inside the screen.
    for part in (".brand", "#site-search", ".site-header nav"):
        box = page.locator(part).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], part
    # A wide table scrolls inside its card, not the page.
    page.goto(url + world["portfolio"].get_absolute_url())
    holdings = page.locator("#holdings")
    wrap = page.locator(".table-wrap", has=holdings)
    assert wrap.evaluate("e => getComputedStyle(e).overflowX") == "auto"
    assert browser_problems == []
