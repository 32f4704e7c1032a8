"""The provider misbehaves: slow, unreachable, down, garbled, throttling, refusing our key.

Against the local fake Alpha Vantage (a real HTTP server), with the answers saved in
``marketdata/tests/fixtures/alphavantage/``. Whatever it does, a stock page renders from the
stored price with a banner saying why (never a 500), no error body is stored or cached as a
price, and a provider failing call after call is left alone by the circuit breaker.
"""

import dataclasses
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from conftest import PROVIDER_KEY, on_redis
from marketdata import breaker
from marketdata.models import PriceHistory
from marketdata.port import MarketDataUnavailable, PricePoint, close_of
from marketdata.price_cache import current_key
from marketdata.quota import Priority
from marketdata.tests.factories import store_bars
from marketdata.upstream_status import upstream_status
from marketdata.wiring import get_market_data
from tests.faults.conftest import free_port

pytestmark = pytest.mark.django_db

DAILY = "TIME_SERIES_DAILY"
FIXTURES = Path(__file__).resolve().parents[2] / "marketdata/tests/fixtures/alphavantage"
UNAVAILABLE = "Live prices are unavailable"
PAUSED = "Live prices are paused"
OFF = "Live prices are off"
STORED_AS_OF = close_of(date(2023, 11, 10))


def fixture(name: str) -> str:
    # The key-echoing daily-limit notice carries a placeholder key; the fake echoes ours instead.
    return (FIXTURES / name).read_text(encoding="utf-8").replace("TESTKEY1234567890", "{apikey}")


def answer(name: str, status: int = 200, content_type: str = "application/json"):
    def arrange(fake_av, settings):
        fake_av.route(DAILY, "*", fixture(name), status=status, content_type=content_type)

    return arrange


def slow(fake_av, settings):
    fake_av.route(DAILY, "*", fake_av.default_daily("OLDCO"), delay=3.0)  # timeout is 0.5 s


def refused(fake_av, settings):
    settings.ALPHA_VANTAGE_BASE_URL = f"http://127.0.0.1:{free_port()}/query"  # nobody listens


CASES = {
    # transient: retried once by the adapter, then the stored price
    "timeout": (slow, UNAVAILABLE),
    "connection refused": (refused, UNAVAILABLE),
    "HTML 503 outage page": (
        answer("synthetic_outage_503.html", status=503, content_type="text/html"),
        UNAVAILABLE,
    ),
    # garbled
    "truncated JSON": (answer("synthetic_daily_truncated.json"), UNAVAILABLE),
    "empty object": (answer("synthetic_empty_object.json"), UNAVAILABLE),
    "a list, not an object": (answer("synthetic_wrong_shape_list.json"), UNAVAILABLE),
    "empty series": (answer("synthetic_daily_empty_series.json"), UNAVAILABLE),
    "non-numeric close": (answer("synthetic_daily_non_numeric_close.json"), UNAVAILABLE),
    "row missing its close": (answer("synthetic_daily_row_missing_close.json"), UNAVAILABLE),
    "negative low": (answer("synthetic_daily_negative_low.json"), UNAVAILABLE),
    "unknown notice": (answer("synthetic_information_unknown_notice.json"), UNAVAILABLE),
    # throttled
    # The burst pause lasts 2 s, and so does its banner: a slow page may render after it.
    "burst limit": (answer("synthetic_information_burst_1_per_second.json"), None),
    "daily limit": (answer("synthetic_information_daily_limit_25.json"), PAUSED),
    "daily limit echoing the key": (
        answer("synthetic_information_daily_limit_key_echo.json"),
        PAUSED,
    ),
    "minute limit (Note, 100 a day)": (
        answer("synthetic_note_rate_limit_5min_100day.json"),
        PAUSED,
    ),
    "minute limit (Note, 2019)": (answer("note_rate_limit_5min_500day_2019.json"), PAUSED),
    "higher call volume (2018)": (answer("information_higher_call_volume_2018.json"), PAUSED),
    # entitlement and key
    "demo key": (answer("synthetic_information_demo_key.json"), OFF),
    "outputsize=full is premium": (
        answer("synthetic_information_outputsize_full_premium.json"),
        OFF,
    ),
    "premium endpoint": (answer("synthetic_information_premium_endpoint.json"), OFF),
    "key missing or invalid": (answer("synthetic_error_apikey_missing.json"), OFF),
    "unknown function": (answer("synthetic_error_unknown_function.json"), OFF),
}


@pytest.fixture
def faulty(settings, live):
    """The live app with a short upstream timeout (0.5 s)."""
    market_data = dataclasses.replace(settings.PAPERTRADE.market_data, request_timeout_seconds=0.5)
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, market_data=market_data)
    return settings


def stored_rows(ticker: str) -> list[tuple]:
    return list(
        PriceHistory.objects.filter(ticker=ticker)
        .order_by("timestamp")
        .values_list("timestamp", "open", "high", "low", "close", "volume", "source", "fetched_at")
    )


def cached_market_keys() -> set[str]:
    """Every market-data key in the cache, whichever backend holds it."""
    if on_redis():
        from django_redis import get_redis_connection

        raw = get_redis_connection("default").keys("papertrade:1:md:*")
        return {k.decode().removeprefix("papertrade:1:") for k in raw}
    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key FROM papertrade_cache")
        keys = [k for (k,) in cursor.fetchall()]
    return {k.removeprefix("papertrade:1:") for k in keys if k.startswith("papertrade:1:md:")}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_failing_provider_leaves_the_page_on_the_stored_price_with_a_warning(
    case, faulty, fake_av, auth_client
):
    arrange, banner = CASES[case]
    store_bars("OLDCO", [(date(2023, 11, 9), "9.0000"), (date(2023, 11, 10), "10.0000")])
    before = stored_rows("OLDCO")
    arrange(fake_av, faulty)

    response = auth_client.get("/stocks/OLDCO/")

    body = response.content.decode()
    assert response.status_code == 200
    assert banner is None or banner in body
    assert "$10.00" in body and "stale" in body
    assert PROVIDER_KEY not in body
    # Nothing the provider sent was stored, and the only price cached is the stored one.
    assert stored_rows("OLDCO") == before
    cached = cache.get(current_key("OLDCO"))
    assert isinstance(cached, PricePoint)
    assert (cached.price, cached.as_of) == (Decimal("10.0000"), STORED_AS_OF)
    allowed = {"md:v2:current:OLDCO", "md:v2:upstream-status", breaker.FAILURES_KEY}
    assert cached_market_keys() <= allowed
    assert PROVIDER_KEY not in str(upstream_status())
    # Looking again, or at the other pages, does not knock again.
    calls = fake_av.count()
    for path in ("/stocks/OLDCO/", "/"):
        assert auth_client.get(path).status_code == 200
    assert fake_av.count() == calls


def wait_until_half_open() -> None:
    until = cache.get(breaker.OPEN_KEY)
    assert until is not None, "the circuit is not open"
    time.sleep(max((until - timezone.now()).total_seconds(), 0) + 0.2)


def test_after_three_failures_no_call_is_made_until_open_seconds_pass(faulty, fake_av):
    faulty.PAPERTRADE = dataclasses.replace(
        faulty.PAPERTRADE, breaker=dataclasses.replace(faulty.PAPERTRADE.breaker, open_seconds=5)
    )
    assert faulty.PAPERTRADE.breaker.failures_to_open == 3
    outage = fixture("synthetic_outage_503.html")
    fake_av.route(DAILY, "*", outage, status=503, content_type="text/html")
    for ticker in ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF"):
        store_bars(ticker, [(date(2023, 11, 10), "10.0000")])
    port = get_market_data()

    # Every failed attempt counts as it happens: AAA's call and its retry, then BBB's call
    # opens the circuit, and BBB's retry is not made.
    for ticker in ("AAA", "BBB"):
        assert port.get_current_price(ticker).is_stale
    assert (fake_av.count(DAILY, "AAA"), fake_av.count(DAILY, "BBB")) == (2, 1)
    calls = fake_av.count()

    # Open: the next requests, and the scheduled refresh, ask nobody.
    for ticker in ("CCC", "DDD"):
        assert port.get_current_price(ticker).price == Decimal("10.0000")
    with pytest.raises(MarketDataUnavailable):
        port.upstream.fetch("EEE", priority=Priority.WATCHLIST)
    assert fake_av.count() == calls

    # After open_seconds one trial call goes out; it fails, and the circuit opens again at once.
    wait_until_half_open()
    port.get_current_price("EEE")
    assert fake_av.count(DAILY, "EEE") >= 1
    calls = fake_av.count()
    port.get_current_price("FFF")
    assert fake_av.count() == calls

    # The provider recovers: the next trial succeeds and closes the circuit for everyone.
    wait_until_half_open()
    fake_av.route(DAILY, "GGG", fake_av.default_daily("GGG"))
    fake_av.route(DAILY, "HHH", fake_av.default_daily("HHH"))
    assert not port.get_current_price("GGG").is_stale
    assert not port.get_current_price("HHH").is_stale
    assert fake_av.count(DAILY, "HHH") == 1
    assert cache.get(breaker.OPEN_KEY) is None


def test_a_refused_key_is_not_an_outage_and_does_not_open_the_circuit(faulty, fake_av):
    fake_av.route(DAILY, "*", fixture("synthetic_information_demo_key.json"))
    for ticker in ("AAA", "BBB", "CCC", "DDD"):
        store_bars(ticker, [(date(2023, 11, 10), "10.0000")])
    port = get_market_data()

    for ticker in ("AAA", "BBB", "CCC", "DDD"):
        port.get_current_price(ticker)

    assert fake_av.count() == 4
    assert cache.get(breaker.OPEN_KEY) is None
