"""The stored tiers of the price port: cache (hot) → PriceHistory (warm)."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketdata.port import PricePoint, Source, TickerNotFound
from marketdata.price_cache import current_key, forget_current_prices
from marketdata.testing.cache_calls import CacheCalls
from marketdata.tests.factories import store_bars, store_series
from marketdata.tiers import TieredMarketData

pytestmark = pytest.mark.django_db


def price_queries(captured: CaptureQueriesContext) -> list[str]:
    """Queries of the price table (on the embedded default the cache is a table too)."""
    return [q["sql"] for q in captured.captured_queries if "marketdata_pricehistory" in q["sql"]]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def port_at(moment: str) -> TieredMarketData:
    """The stored tiers at ``moment``, judging staleness as in live mode."""
    return TieredMarketData(clock=lambda: at(moment), live=True)


def test_a_stored_close_is_the_current_price_with_its_provenance(aapl):
    point = port_at("2023-11-11 15:00").get_current_price("AAPL")
    assert point == PricePoint(
        ticker="AAPL",
        price=Decimal("186.4000"),
        as_of=at("2023-11-10 21:00"),  # 16:00 New York
        source=Source.IMPORT,
        open=Decimal("186.4000"),
        high=Decimal("187.4000"),
        low=Decimal("185.4000"),
        close=Decimal("186.4000"),
        volume=1000,
        previous_close=Decimal("182.4100"),
        is_stale=False,
    )


@pytest.mark.parametrize(
    ("now", "stale"),
    [
        ("2023-11-11 15:00", False),  # Saturday: Friday's close is the latest due
        ("2023-11-13 20:00", False),  # Monday before its close: still Friday's
        ("2023-11-13 22:30", True),  # Monday after close + grace: Monday's bar is due
        ("2026-11-25 12:00", True),
    ],
)
def test_staleness_follows_the_nyse_calendar(aapl, now, stale):
    assert port_at(now).get_current_price("AAPL").is_stale is stale


def test_a_holiday_does_not_make_a_price_stale(db):
    # Thursday 2023-11-23 was Thanksgiving: on that evening Wednesday's close is the latest.
    store_bars("MSFT", [(date(2023, 11, 22), "377.8500")])
    assert port_at("2023-11-24 02:00").get_current_price("MSFT").is_stale is False


def test_an_unknown_ticker_is_not_found(db):
    with pytest.raises(TickerNotFound):
        port_at("2023-11-11 15:00").get_current_price("ZZZZ")


def test_a_database_hit_warms_the_cache(aapl):
    port = port_at("2023-11-11 15:00")
    port.get_current_price("AAPL")
    cached = cache.get(current_key("AAPL"))
    assert cached.price == Decimal("186.4000")
    with CaptureQueriesContext(connection) as queries:
        assert port.get_current_price("AAPL").price == Decimal("186.4000")
    assert price_queries(queries) == []


def test_a_whole_portfolio_costs_one_cache_round_trip_and_one_query(db):
    for i in range(50):
        store_series(f"T{i}", date(2023, 11, 10), ["10.0000", f"{11 + i}.0000"])
    tickers = [f"T{i}" for i in range(50)] + ["NOPE"]
    port = port_at("2023-11-11 15:00")
    with CacheCalls() as spy, CaptureQueriesContext(connection) as queries:
        cold = port.get_current_prices(tickers)
    assert len(price_queries(queries)) == 1
    assert spy.calls == ["get_many", "set_many"]
    assert cold["T7"].price == Decimal("18.0000")
    assert cold["T7"].previous_close == Decimal("10.0000")
    assert isinstance(cold["NOPE"], TickerNotFound)

    with CacheCalls() as spy, CaptureQueriesContext(connection) as queries:
        warm = port.get_current_prices(tickers)
    assert spy.calls == ["get_many"]
    # Only the unknown ticker is asked of the database again.
    assert len(price_queries(queries)) == 1
    assert {t: p.price for t, p in warm.items() if t != "NOPE"} == {
        t: p.price for t, p in cold.items() if t != "NOPE"
    }


def test_the_latest_bar_is_found_in_a_long_history(db):
    closes = [f"{100 + i}.0000" for i in range(300)]
    store_series("LONG", date(2023, 11, 10), closes)
    point = port_at("2023-11-11 15:00").get_current_price("LONG")
    assert point.price == Decimal("399.0000")
    assert point.previous_close == Decimal("398.0000")


def test_new_bars_replace_the_cached_price_once_forgotten(aapl):
    port = port_at("2023-11-14 15:00")
    assert port.get_current_price("AAPL").price == Decimal("186.4000")
    store_bars("AAPL", [(date(2023, 11, 13), "184.8000")])
    forget_current_prices(["AAPL"])
    point = port.get_current_price("AAPL")
    assert (point.price, point.previous_close) == (Decimal("184.8000"), Decimal("186.4000"))


def test_price_at_gives_the_last_bar_at_or_before_a_moment(aapl):
    port = port_at("2023-11-14 15:00")
    assert port.get_price_at("AAPL", at("2023-11-11 12:00")).price == Decimal("186.4000")
    assert port.get_price_at("AAPL", at("2023-11-10 20:59")).price == Decimal("182.4100")


def test_history_is_oldest_first_within_the_range(aapl):
    history = port_at("2023-11-14 15:00").get_price_history(
        "AAPL", date(2023, 11, 1), date(2023, 11, 30)
    )
    assert [p.price for p in history] == [Decimal("182.4100"), Decimal("186.4000")]
    with pytest.raises(TickerNotFound):
        port_at("2023-11-14 15:00").get_price_history("ZZZZ", date(2023, 1, 1), date(2023, 2, 1))


def test_symbol_search_offline_finds_bundled_and_stored_tickers(db):
    store_bars("ZZQT", [(date(2023, 11, 10), "1.0000")])
    port = port_at("2023-11-14 15:00")
    assert [m.ticker for m in port.search_symbols("zzq")] == ["ZZQT"]
    assert [m.ticker for m in port.search_symbols("app")][:1] == ["AAPL"]
    assert port.search_symbols("international")[0].name.startswith("International Business")
    assert port.search_symbols("  ") == []
