"""An operator in a real browser: the staff-only market-data status page."""

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the conftest skips (or fails in CI) without Playwright
    expect = None

from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser


def test_a_staff_user_sees_the_market_data_status_page(
    live_server, page, offline_prices, django_user_model, password, browser_problems
):
    expect.set_options(timeout=10_000)
    django_user_model.objects.create_user(username="ops", password=password, is_staff=True)
    log_in(page, live_server.url, "ops", password)
    page.get_by_role("link", name="Market data").click()
    expect(page).to_have_url(live_server.url + "/market-data/status/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Market data status")
    for section in ("Quota", "Last refresh", "Freshness", "Coverage gaps"):
        expect(page.get_by_role("heading", name=section)).to_be_visible()
    assert browser_problems == []


def test_a_user_who_is_not_staff_gets_no_status_page(
    live_server, page, offline_prices, user, password, browser_problems
):
    log_in(page, live_server.url, user.username, password)
    expect(page.get_by_role("link", name="Market data")).to_have_count(0)
    response = page.goto(live_server.url + "/market-data/status/")
    assert response.status == 404
