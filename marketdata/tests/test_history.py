"""Price history through the port: a price at a moment, and daily bars over a range.

Stored reads use a fixed clock; the live stories run against the local fake Alpha Vantage and
count the calls it saw, which is what the quota pays for. The fake serves real saved series for
AAPL, IBM, MSFT and TSLA, so the live stories use made-up tickers (generated series ending at
the latest closed session).
"""

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from django.db import connection

from marketdata.models import PriceHistory
from marketdata.port import MarketDataUnavailable, PricePoint, TickerNotFound, session_date
from marketdata.tests.factories import store_bars, store_series
from marketdata.tiers import TieredMarketData
from marketdata.trading_calendar import latest_due_close, nyse
from marketdata.wiring import get_market_data

DAILY = "TIME_SERIES_DAILY"

pytestmark = pytest.mark.django_db


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def port_at(moment: str) -> TieredMarketData:
    """The stored tiers at ``moment``, judging staleness as in live mode."""
    return TieredMarketData(clock=lambda: at(moment), live=True)


def sessions(end: date, count: int) -> list[date]:
    """The last ``count`` NYSE sessions on or before ``end``, oldest first."""
    cal = nyse()
    last = cal.date_to_session(pd.Timestamp(end), "previous")
    return [s.date() for s in cal.sessions_window(last, -count)]


def store_sessions(ticker: str, days: list[date]) -> None:
    store_bars(ticker, [(d, f"{10 + i}.0000") for i, d in enumerate(days)])


# --- a price at a moment ----------------------------------------------------------------------
def test_a_saturday_gets_fridays_close_and_it_is_fresh(aapl):
    point = port_at("2023-11-20 15:00").get_price_at("AAPL", at("2023-11-11 18:00"))
    assert point.session_date == date(2023, 11, 10)
    assert point.price == Decimal("186.4000")
    assert point.previous_close == Decimal("182.4100")
    assert not point.is_stale  # judged against Saturday, not against the clock


def test_a_moment_past_the_last_bar_gets_it_marked_stale(aapl):
    # Tuesday evening: Monday's and Tuesday's closes are due, and only Friday's is stored.
    point = port_at("2023-11-20 15:00").get_price_at("AAPL", at("2023-11-14 23:00"))
    assert point.session_date == date(2023, 11, 10)
    assert point.is_stale


def test_a_moment_before_the_first_bar_is_unavailable(aapl):
    with pytest.raises(MarketDataUnavailable, match="first stored bar is 2023-11-09"):
        port_at("2023-11-20 15:00").get_price_at("AAPL", at("2023-11-01 12:00"))


def test_an_unknown_ticker_is_not_found(db):
    port = port_at("2023-11-20 15:00")
    with pytest.raises(TickerNotFound):
        port.get_price_at("ZZZZ", at("2023-11-10 21:00"))
    with pytest.raises(TickerNotFound):
        port.get_price_history("ZZZZ", date(2023, 1, 1), date(2023, 2, 1))


# --- daily bars over a range ------------------------------------------------------------------
def test_history_is_oldest_first_and_bounded_by_its_dates_in_one_query(
    db, django_assert_num_queries
):
    store_series("HIST", date(2023, 11, 10), [f"{100 + i}.0000" for i in range(300)])
    port = port_at("2023-11-20 15:00")
    with django_assert_num_queries(1):
        week = port.get_price_history("HIST", date(2023, 10, 2), date(2023, 10, 6))
    assert [p.session_date for p in week] == [date(2023, 10, d) for d in (2, 3, 4, 5, 6)]
    assert [p.price for p in week] == sorted(p.price for p in week)
    assert all(p.ticker == "HIST" and p.open and p.volume == 1000 for p in week)
    # A weekend at either end adds nothing; a range with no bars is empty, not an error.
    assert port.get_price_history("HIST", date(2023, 9, 30), date(2023, 10, 8)) == week
    assert port.get_price_history("HIST", date(2023, 12, 1), date(2023, 12, 31)) == []


def test_history_points_are_the_stored_bars_exactly(db):
    stored = store_bars("EXACT", [(date(2023, 3, 10), "10.5000"), (date(2023, 3, 13), "11.2500")])

    points = port_at("2023-03-14 12:00").get_price_history(
        "EXACT", date(2023, 3, 1), date(2023, 3, 31)
    )

    # Across the DST change, the same instants and values as the rows, built the usual way.
    assert points == [
        PricePoint(
            ticker="EXACT",
            price=bar.close,
            as_of=bar.timestamp,
            source=bar.source,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
        )
        for bar in stored
    ]
    assert [p.as_of.utcoffset() for p in points] == [timedelta(0), timedelta(0)]
    assert [p.as_of.hour for p in points] == [21, 20]  # 16:00 EST, then 16:00 EDT
    with pytest.raises(AttributeError):  # immutable: a changed copy comes from replace()
        points[0].price = Decimal("1")
    assert points[0].replace(price=Decimal("1")).price == Decimal("1") != points[0].price


# --- the live port: topping up from upstream --------------------------------------------------
def test_complete_history_costs_no_call(live, fake_av):
    due = live.due_session()
    store_sessions("FULLCO", sessions(due, 60))
    history = live.get_price_history("FULLCO", sessions(due, 40)[0], date.today())
    assert len(history) == 40
    assert fake_av.count() == 0


def test_missing_recent_days_cost_one_call_then_none(live, fake_av):
    due = live.due_session()
    recent = sessions(due, 60)
    store_sessions("GAPCO", recent[:-10])  # the store ends ten sessions ago
    history = live.get_price_history("GAPCO", recent[0], date.today())
    assert fake_av.count(DAILY, "GAPCO") == 1
    assert history[-1].session_date >= due
    assert [p.session_date for p in history] == sorted({p.session_date for p in history})
    assert live.get_price_history("GAPCO", recent[0], date.today()) == history
    assert fake_av.count() == 1


def test_a_free_key_never_asks_for_more_than_the_last_100_sessions(live, fake_av):
    # The provider's newest bar may be the session that closed minutes ago: count from that.
    newest = session_date(latest_due_close(datetime.now(UTC), timedelta(0)))
    fake_av.as_of = newest
    window = sessions(newest, 120)  # window[-1 - k] is k sessions back
    store_sessions("FARCO", window[:10])
    store_sessions("NEARCO", window[:10])
    # The newest session missing is 100 back: a compact answer (0..99 back) cannot have it.
    history = live.get_price_history("FARCO", window[0], window[-101])
    assert len(history) == 10
    assert fake_av.count() == 0
    # 99 back: one compact call brings it.
    history = live.get_price_history("NEARCO", window[0], window[-100])
    assert fake_av.count(DAILY, "NEARCO") == 1
    assert history[-1].session_date == window[-100]


def test_an_old_range_is_asked_for_only_on_a_premium_key(live, fake_av, settings):
    store_sessions("OLDCO", sessions(date(2015, 6, 30), 50))
    assert len(live.get_price_history("OLDCO", date(2015, 1, 1), date(2015, 12, 31))) == 50
    assert fake_av.count() == 0
    md = dataclasses.replace(settings.PAPERTRADE.market_data, premium=True)
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, market_data=md)
    premium = get_market_data()
    assert premium.upstream.client.premium  # asks outputsize=full
    premium.get_price_history("OLDCO", date(2015, 1, 1), date(2015, 12, 31))
    assert fake_av.count(DAILY, "OLDCO") == 1


def test_a_failing_top_up_returns_the_stored_bars(live, fake_av):
    recent = sessions(live.due_session(), 30)
    store_sessions("THRCO", recent[:-5])
    store_sessions("DOWNCO", recent[:-5])
    fake_av.route(DAILY, "DOWNCO", "<html>Application Error</html>", status=503)
    assert len(live.get_price_history("DOWNCO", recent[0], date.today())) == 25
    fake_av.throttle_after(0)  # every answer is now the daily-limit message
    assert len(live.get_price_history("THRCO", recent[0], date.today())) == 25
    calls = fake_av.count()
    # Nobody knocks again for a while, however often the history is read.
    for ticker in ("DOWNCO", "THRCO"):
        assert len(live.get_price_history(ticker, recent[0], date.today())) == 25
    assert fake_av.count() == calls


def test_an_unknown_ticker_costs_one_call_then_none(live, fake_av):
    fake_av.unknown("NOSUCH")
    for _ in range(2):
        with pytest.raises(TickerNotFound):
            live.get_price_history("NOSUCH", date(2023, 1, 1), date.today())
        with pytest.raises(TickerNotFound):
            live.get_price_at("NOSUCH", datetime.now(UTC))
    assert fake_av.count() == 1


def test_a_delisted_ticker_keeps_its_stored_history(live, fake_av):
    recent = sessions(live.due_session(), 30)
    store_sessions("GONECO", recent[:-10])
    fake_av.unknown("GONECO")
    for _ in range(2):
        assert len(live.get_price_history("GONECO", recent[0], date.today())) == 20
    inside = datetime.combine(recent[5], time(23, 30), tzinfo=UTC)
    assert live.get_price_at("GONECO", inside).session_date == recent[5]
    assert fake_av.count() == 1


def test_a_price_at_a_moment_past_the_stored_bars_is_the_last_one_marked_stale(live, fake_av):
    """get_price_at reads what is stored and never calls the provider: a moment past the last
    stored bar gets that bar, marked stale (the time machine reads history, it does not fetch)."""
    recent = sessions(live.due_session(), 30)
    store_sessions("NOWCO", recent[:-10])
    point = live.get_price_at("NOWCO", datetime.now(UTC))
    assert point.session_date == recent[-11]
    assert point.is_stale
    assert point.previous_close is not None
    # A moment the stored bars cover is answered from them, fresh as of that moment.
    moment = datetime.combine(recent[-13], datetime.min.time(), tzinfo=UTC)
    earlier = live.get_price_at("NOWCO", moment)
    assert earlier.session_date == recent[-14]
    assert not earlier.is_stale
    assert fake_av.count() == 0


def test_a_saturday_in_the_stored_past_costs_no_call(live, fake_av, aapl):
    point = live.get_price_at("AAPL", at("2023-11-11 18:00"))
    assert (point.session_date, point.is_stale) == (date(2023, 11, 10), False)
    assert fake_av.count() == 0


def test_a_gap_inside_the_history_is_served_stale_without_a_call(live, fake_av):
    store_bars("HOLE", [(date(2023, 11, 6), "10.0000"), (date(2023, 11, 10), "12.0000")])
    point = live.get_price_at("HOLE", at("2023-11-08 23:00"))
    assert (point.session_date, point.is_stale) == (date(2023, 11, 6), True)
    assert fake_av.count() == 0


# --- the plan on PostgreSQL -------------------------------------------------------------------
LOAD_20_YEARS = """
INSERT INTO marketdata_pricehistory
    (ticker, interval, timestamp, open, high, low, close, volume, source, fetched_at)
SELECT t.ticker, '1d', (d::date + time '16:00') AT TIME ZONE 'America/New_York',
       10, 11, 9, 10, 1000, 'import', now()
FROM (SELECT 'T' || lpad(i::text, 3, '0') AS ticker FROM generate_series(0, 39) i) t
CROSS JOIN generate_series(date '2004-01-01', date '2023-12-31', interval '1 day') d
WHERE extract(isodow FROM d) < 6
ORDER BY t.ticker, d  -- as import_prices loads them: one ticker's file after another
"""


@pytest.mark.postgres
def test_a_year_of_one_ticker_among_many_is_one_index_range_scan():
    """Reproduces the plan in docs/history-queries.md (run with -s to print it)."""
    with connection.cursor() as cursor:
        cursor.execute(LOAD_20_YEARS)
        cursor.execute("ANALYZE marketdata_pricehistory")
    year_plan = PriceHistory.objects.sessions("T017", date(2023, 1, 1), date(2023, 12, 31)).explain(
        analyze=True
    )
    print(f"\nOne year:\n{year_plan}")
    assert year_plan.startswith("Index Scan using pricehistory_unique_bar"), year_plan
    assert "Sort" not in year_plan, year_plan
    # Twenty years: the planner may read that index's range as a bitmap and sort; never a Seq Scan.
    all_plan = PriceHistory.objects.sessions("T017", date(2004, 1, 1), date(2023, 12, 31)).explain(
        analyze=True
    )
    print(f"\nTwenty years:\n{all_plan}")
    assert "pricehistory_unique_bar" in all_plan and "Seq Scan" not in all_plan, all_plan
    year = TieredMarketData().get_price_history("T017", date(2023, 1, 1), date(2023, 12, 31))
    assert len(year) == 260  # the weekdays of 2023
