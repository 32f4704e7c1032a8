"""The full read path against a local fake Alpha Vantage: cache → PriceHistory → upstream.

Each story counts the calls the fake server saw, which is what the quota pays for.
"""

import base64
import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection

from conftest import PROVIDER_KEY as KEY
from marketdata.models import PriceHistory
from marketdata.port import MarketDataUnavailable, Source, TickerNotFound
from marketdata.tests.factories import store_bars

DAILY = "TIME_SERIES_DAILY"


pytestmark = pytest.mark.django_db


def test_the_first_view_costs_one_call_and_later_ones_none(live, fake_av):
    first = live.get_current_price("NEWCO")
    assert fake_av.count(DAILY, "NEWCO") == 1
    assert first.source == Source.ALPHA_VANTAGE
    assert not first.is_stale
    # 100 compact bars stored, the latest is the price.
    assert PriceHistory.objects.filter(ticker="NEWCO").count() == 100
    assert live.get_current_price("NEWCO") == first
    assert fake_av.count(DAILY, "NEWCO") == 1
    cache.clear()  # Redis flushed: the database tier answers
    assert live.get_current_price("NEWCO").price == first.price
    assert fake_av.count(DAILY, "NEWCO") == 1


def test_an_unknown_ticker_costs_one_call_then_none(live, fake_av):
    fake_av.unknown("NOSUCH")
    for _ in range(3):
        with pytest.raises(TickerNotFound):
            live.get_current_price("NOSUCH")
    assert fake_av.count(DAILY, "NOSUCH") == 1
    batch = live.get_current_prices(["NOSUCH"])
    assert isinstance(batch["NOSUCH"], TickerNotFound)
    assert fake_av.count() == 1


def test_a_stale_stored_price_is_refreshed_once(live, fake_av):
    store_bars("OLDCO", [(date(2023, 11, 10), "10.0000")], source=Source.ALPHA_VANTAGE)
    point = live.get_current_price("OLDCO")
    assert fake_av.count(DAILY, "OLDCO") == 1
    assert point.as_of.date() > date(2023, 11, 10)
    assert not point.is_stale


def test_imported_bars_are_never_overwritten_by_the_provider(live, fake_av):
    body = fake_av.default_daily("KEEP")
    last_day = max(body["Time Series (Daily)"])
    store_bars("KEEP", [(date.fromisoformat(last_day), "999.0000")], source=Source.IMPORT)
    cache.clear()
    # The stored bar is fresh, so nothing is fetched; force a fetch to test the rule.
    live.upstream.fetch("KEEP", priority=0)
    kept = PriceHistory.objects.get(ticker="KEEP", close=Decimal("999.0000"))
    assert kept.source == Source.IMPORT
    assert PriceHistory.objects.filter(ticker="KEEP").count() == 100


def test_batch_reads_never_go_upstream(live, fake_av):
    result = live.get_current_prices(["NEWCO", "OTHER"])
    assert fake_av.count() == 0
    assert all(isinstance(v, TickerNotFound) for v in result.values())


def test_a_throttled_answer_serves_the_stored_price_with_a_warning(live, fake_av, client, user):
    store_bars("OLDCO", [(date(2023, 11, 9), "9.0000"), (date(2023, 11, 10), "10.0000")])
    fake_av.throttle_after(0)  # every answer is the daily-limit message (which echoes the key)
    point = live.get_current_price("OLDCO")
    assert point.price == Decimal("10.0000") and point.is_stale
    assert fake_av.count() == 1
    # The provider said stop: nobody calls again, however many pages are opened.
    cache.delete("papertrade:md:v2:current:OLDCO")
    client.force_login(user)
    for url in ("/", "/stocks/OLDCO/", "/stocks/OTHER/"):
        response = client.get(url)
        assert response.status_code in (200, 404), url
    body = client.get("/stocks/OLDCO/").content.decode()
    assert "Live prices are paused" in body
    assert "$10.00" in body and "stale" in body
    assert fake_av.count() == 1
    assert KEY not in body


def test_an_outage_without_stored_prices_is_a_clear_error_not_a_500(live, fake_av, client, user):
    fake_av.route(
        DAILY,
        "*",
        "<html><body>Application Error</body></html>",
        status=503,
        content_type="text/html",
    )
    with pytest.raises(MarketDataUnavailable):
        live.get_current_price("DOWNCO")
    client.force_login(user)
    response = client.get("/stocks/DOWNCO/")
    assert response.status_code == 200
    assert "Live prices are unavailable" in response.content.decode()
    assert not PriceHistory.objects.filter(ticker="DOWNCO").exists()


# SQLite's shared in-memory test database locks whole tables across threads; the embedded
# default runs on a WAL file instead. This story runs where production does.
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_100_concurrent_first_views_cost_one_call(live, fake_av):
    fake_av.route(DAILY, "RUSH", fake_av.default_daily("RUSH"), delay=0.5)
    barrier = threading.Barrier(100)

    def view(_):
        barrier.wait()
        try:
            return live.get_current_price("RUSH").price
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=100) as pool:
        prices = list(pool.map(view, range(100)))
    assert fake_av.count(DAILY, "RUSH") == 1
    assert len(set(prices)) == 1


def test_the_search_answers_locally_first_then_asks_the_provider_once(live, fake_av):
    assert [m.ticker for m in live.search_symbols("app")][:1] == ["AAPL"]
    assert fake_av.count() == 0
    fake_av.route(
        "SYMBOL_SEARCH",
        "*",
        {
            "bestMatches": [
                {
                    "1. symbol": "ZYXI",
                    "2. name": "Zynex Inc",
                    "3. type": "Equity",
                    "4. region": "United States",
                    "5. marketOpen": "09:30",
                    "6. marketClose": "16:00",
                    "7. timezone": "UTC-04",
                    "8. currency": "USD",
                    "9. matchScore": "0.8000",
                },
                {
                    "1. symbol": "ZYX.DEX",
                    "2. name": "Zyx AG",
                    "3. type": "Equity",
                    "4. region": "XETRA",
                    "5. marketOpen": "08:00",
                    "6. marketClose": "20:00",
                    "7. timezone": "UTC+02",
                    "8. currency": "EUR",
                    "9. matchScore": "0.5000",
                },
            ]
        },
    )
    assert [m.ticker for m in live.search_symbols("zynex")] == ["ZYXI"]
    assert [m.ticker for m in live.search_symbols("zynex")] == ["ZYXI"]
    assert fake_av.count("SYMBOL_SEARCH") == 1


def everything_in_the_database() -> str:
    """Every row of every table, as text."""
    dump = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            dump.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(dump)


def everything_in_the_cache() -> bytes:
    """Every cached value as stored (pickled bytes), from Redis or the cache table."""
    from django.conf import settings

    if "RedisCache" in settings.CACHES["default"]["BACKEND"]:
        from django_redis import get_redis_connection

        redis = get_redis_connection("default")
        return b"\n".join(
            (key + b"=" + (redis.get(key) or b"")) for key in redis.scan_iter(count=1000)
        )
    # The database cache keeps base64-encoded pickles in its table.
    table = connection.ops.quote_name(settings.CACHES["default"]["LOCATION"])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT cache_key, value FROM {table}")
        return b"\n".join(
            key.encode() + b"=" + base64.b64decode(value) for key, value in cursor.fetchall()
        )


def test_the_api_key_is_nowhere_after_the_key_echoing_limit_message(live, fake_av, caplog, capfd):
    caplog.set_level("DEBUG")
    store_bars("OLDCO", [(date(2023, 11, 10), "10.0000")])
    fake_av.throttle_after(0)  # the daily-limit answer, which repeats the key it was sent
    live.get_current_price("OLDCO")
    with pytest.raises(MarketDataUnavailable) as excinfo:
        live.get_current_price("FRESHCO")
    assert fake_av.requests[0][2] == KEY  # it was sent, so the echo really contained it
    assert KEY not in str(excinfo.value) and KEY not in repr(excinfo.value)
    assert KEY not in caplog.text
    out, err = capfd.readouterr()
    assert KEY not in out and KEY not in err
    assert KEY not in everything_in_the_database()
    assert KEY.encode() not in everything_in_the_cache()
    assert KEY not in repr(cache.get("md:v2:upstream-status"))


def test_global_quote_serves_a_persons_request_when_configured(live, fake_av, settings):
    market = dataclasses.replace(settings.PAPERTRADE.market_data, global_quote=True)
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, market_data=market)
    daily = fake_av.default_daily("QUOTECO")["Time Series (Daily)"]
    last, before = sorted(daily)[-1], sorted(daily)[-2]
    point = live.get_current_price("QUOTECO")
    assert fake_av.count("GLOBAL_QUOTE", "QUOTECO") == 1
    assert fake_av.count("TIME_SERIES_DAILY") == 0
    assert point.price == Decimal(daily[last]["4. close"])
    assert point.previous_close == Decimal(daily[before]["4. close"])
    assert PriceHistory.objects.filter(ticker="QUOTECO").count() == 1
