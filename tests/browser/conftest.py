"""A real headless Chromium (Debian's, never a downloaded one) driven by Playwright's sync API.

Where Chromium or Playwright is missing the browser tests skip, except in CI
(PAPERTRADE_REQUIRE_SERVICES=1), where they fail and say what is missing.
"""

import os
from datetime import date

import pytest

REQUIRE_SERVICES = os.environ.get("PAPERTRADE_REQUIRE_SERVICES") == "1"


@pytest.fixture(scope="package", autouse=True)
def _orm_beside_playwright():
    """Playwright's sync API runs an event loop in the test's thread; Django then refuses ORM
    calls from that thread ("SynchronousOnlyOperation") unless told they are safe, as they are
    here. Set for the browser tests only, so no other test (or its subprocesses) inherits it."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TIMEOUT_MS = 10_000


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"PAPERTRADE_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def chromium(_orm_beside_playwright):
    """One headless Chromium for the session."""
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed: pip install playwright")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser_problems() -> list[str]:
    """What went wrong out of sight: server errors, uncaught JavaScript errors, requests that
    tried to leave the test server. A test asserts this is empty at its end."""
    return []


@pytest.fixture
def new_context(chromium, live_server, browser_problems):
    """Make fresh browser contexts (own cookies) that may talk only to the live server; each is
    closed after the test."""
    contexts = []
    origin = live_server.url

    def stay_local(route) -> None:
        if route.request.url.startswith(origin + "/"):
            route.continue_()
        else:
            browser_problems.append(f"request outside the test server: {route.request.url}")
            route.abort()

    def on_response(response) -> None:
        if response.status >= 500:
            browser_problems.append(
                f"{response.status} from {response.request.method} {response.url}"
            )

    def make(**kwargs):
        kwargs.setdefault("viewport", {"width": 1280, "height": 900})
        context = chromium.new_context(**kwargs)
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", stay_local)
        context.on("response", on_response)
        context.on("weberror", lambda e: browser_problems.append(f"JavaScript error: {e.error}"))
        # A page that breaks the Content-Security-Policy is a page that does not work as built.
        context.on(
            "console",
            lambda m: (
                browser_problems.append(f"console: {m.text}")
                if "Content Security Policy" in m.text or "Content-Security-Policy" in m.text
                else None
            ),
        )
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_context):
    return new_context().new_page()


@pytest.fixture
def offline_prices(settings, transactional_db):
    """Stored prices only, never the network: no API key, and AAPL's last two demo closes."""
    from marketdata.tests.factories import store_bars

    settings.ALPHA_VANTAGE_API_KEY = ""
    return store_bars("AAPL", [(date(2023, 11, 9), "182.4100"), (date(2023, 11, 10), "186.4000")])


def log_in(page, url: str, username: str, password: str) -> None:
    """Log in through the login form and land on the dashboard."""
    from playwright.sync_api import expect

    page.goto(url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(url + "/")
