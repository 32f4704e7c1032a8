"""A stock page for a ticker nothing is stored for, in a real browser: it answers at once with
"Fetching…", polls, and shows the price once the background fetch has stored it; then a real
click buys it. The background worker is a thread here that runs the task once the test has
seen the page say "Fetching" (a Celery worker, a little late); the provider is the local fake.
"""

import threading
from decimal import Decimal

import pytest
from django.db import connections

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture skips (or fails in CI) and says why
    expect = None

from marketdata.wiring import get_market_data, get_upstream
from portfolios.models import Transaction
from portfolios.services import portfolio_create
from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [1280, 390])  # a desktop, and a phone
def test_a_new_ticker_is_fetched_in_the_background_and_the_page_picks_it_up(
    live_server, new_context, live, fake_av, user, password, monkeypatch, browser_problems, width
):
    expect.set_options(timeout=15_000)
    page = new_context(viewport={"width": width, "height": 900}).new_page()
    workers: list[threading.Thread] = []
    seen_fetching = {"NEWCO": threading.Event(), "OTHERCO": threading.Event()}

    def late_worker(ticker: str) -> None:
        def run() -> None:
            seen_fetching[ticker].wait(timeout=15)
            try:
                get_market_data().fetch_requested(ticker)
            finally:
                connections.close_all()

        worker = threading.Thread(target=run)
        workers.append(worker)
        worker.start()

    monkeypatch.setattr(get_upstream(), "enqueue", late_worker)
    portfolio = portfolio_create(owner=user, name="Main", opening_deposit=Decimal("10000.00"))
    url = live_server.url
    log_in(page, url, user.username, password)

    page.goto(url + "/stocks/NEWCO/")
    notice = page.locator("#price-fetching")
    expect(notice).to_contain_text("Fetching the latest price of NEWCO")
    assert fake_av.count() == 0  # the page answered before anyone asked the provider
    seen_fetching["NEWCO"].set()

    # The page polls, sees the fetch is over and reloads itself to show the price.
    expect(notice).to_have_count(0)
    expect(page.locator(".quote .price")).to_be_visible()
    expect(page.locator(".quote .badge.stale")).to_have_count(0)
    for worker in workers:
        worker.join(timeout=10)
    assert fake_av.count("TIME_SERIES_DAILY", "NEWCO") == 1

    # A real click on the buy shortcut, then on "Place order".
    page.get_by_role("link", name="Buy in Main").click()
    page.locator("#id_quantity").fill("3")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator("#receipt")).to_contain_text("Bought 3 NEWCO")
    txn = Transaction.objects.get(portfolio=portfolio, kind=Transaction.Kind.BUY)
    assert txn.ticker == "NEWCO" and txn.quantity == Decimal("3")
    assert not txn.price_was_stale
    assert fake_av.count() == 1

    # An order for a ticker nothing is stored for: refused while its price is on its way; the
    # preview polls (inside the trade panel, which stays) until the price shows, then it fills.
    page.locator("#id_ticker").fill("OTHERCO")
    page.locator("#id_quantity").fill("1")
    page.get_by_role("button", name="Place order").click()
    panel = page.locator("#trade-panel")
    expect(page.locator("#id_ticker_error")).to_contain_text("OTHERCO is being fetched")
    expect(page.locator("#trade-preview")).to_contain_text("OTHERCO is being fetched")
    seen_fetching["OTHERCO"].set()
    expect(page.locator("#trade-preview")).to_contain_text("Estimated total")
    expect(panel).to_have_count(1)
    page.get_by_role("button", name="Place order").click()
    expect(page.locator("#receipt")).to_contain_text("Bought 1 OTHERCO")
    for worker in workers:
        worker.join(timeout=10)
    assert Transaction.objects.filter(portfolio=portfolio, kind=Transaction.Kind.BUY).count() == 2
    assert fake_av.count("TIME_SERIES_DAILY", "OTHERCO") == 1
    assert browser_problems == []
