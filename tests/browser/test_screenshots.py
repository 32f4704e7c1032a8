"""The README's pictures, taken from the running app so that they stay current.

Each run draws the portfolio and stock pages of the offline demo (light, desktop width; and the
portfolio page on a phone in the dark scheme) and checks the picture is a real one. With
``PAPERTRADE_SCREENSHOTS=docs/images`` (``make screenshots``) they are written there for the
README; otherwise to a temporary folder.
"""

import os
import struct
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture skips (or fails in CI) and says why
    expect = None

from portfolios.services import portfolio_buy, portfolio_create
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SHOTS = {
    "portfolio.png": ("portfolio", {"width": 1280, "height": 900}, "light"),
    "stock.png": ("stock", {"width": 1280, "height": 900}, "light"),
    "portfolio-phone-dark.png": ("portfolio", {"width": 390, "height": 844}, "dark"),
}


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is no PNG"
    return struct.unpack(">II", head[16:24])


def test_the_readme_pictures(live_server, new_context, settings, user, password, tmp_path):
    expect.set_options(timeout=10_000)
    settings.ALPHA_VANTAGE_API_KEY = ""
    call_command("load_demo_prices", verbosity=0)
    portfolio = portfolio_create(owner=user, name="Long term", opening_deposit=Decimal("25000"))
    for ticker, quantity in (("AAPL", "20"), ("MSFT", "8"), ("NVDA", "25"), ("JPM", "10")):
        portfolio_buy(portfolio=portfolio, ticker=ticker, quantity=Decimal(quantity))
    pages = {"portfolio": portfolio.get_absolute_url(), "stock": "/stocks/NVDA/?range=ALL"}
    folder = Path(os.environ.get("PAPERTRADE_SCREENSHOTS") or tmp_path)
    if not folder.is_absolute():
        folder = REPO / folder
    folder.mkdir(parents=True, exist_ok=True)

    for name, (which, viewport, scheme) in SHOTS.items():
        page = new_context(viewport=viewport, color_scheme=scheme).new_page()
        log_in(page, live_server.url, user.username, password)
        page.goto(live_server.url + pages[which])
        expect(page.locator("[data-chart] .main-svg").first).to_be_visible()
        page.screenshot(path=folder / name, full_page=which == "stock")
        width, height = png_size(folder / name)
        assert width == viewport["width"] and height >= viewport["height"] // 2, name
