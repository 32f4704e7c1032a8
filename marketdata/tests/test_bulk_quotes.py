"""Bulk quotes on a premium key (PRODUCT §12): REALTIME_BULK_QUOTES, up to 100 symbols a call,
each call one quota take; a key refused the function falls back to one call a ticker and says so
once. The only saved answer is the one a key *without* the entitlement gets: a ``message``
saying so and a sample whose values Alpha Vantage labels ARTIFICIAL. The entitled answer below is
SYNTHETIC: that sample's ``data`` rows without the refusal, as the documented schema has them."""

import dataclasses
import json
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from marketdata.alpha_vantage import BULK_LIMIT
from marketdata.models import PriceHistory
from marketdata.port import ProviderMisconfigured, RateLimited, close_of, session_date
from marketdata.refresh import refresh_prices
from marketdata.tests.factories import store_bars
from marketdata.tests.test_alpha_vantage import FIXTURES, serve
from marketdata.trading_calendar import latest_due_close
from marketdata.upstream_status import bulk_refused, upstream_status

ARTIFICIAL = "realtime_bulk_quotes_premium_artificial_sample.json"
BULK = "REALTIME_BULK_QUOTES"


def entitled_body(symbols=None, day=None) -> dict:
    """SYNTHETIC: the artificial sample's rows as an entitled key would get them (no message),
    optionally for other symbols and another day."""
    sample = json.loads((FIXTURES / ARTIFICIAL).read_text(encoding="utf-8"))
    rows = sample["data"]
    if symbols is not None:
        rows = [{**rows[i % len(rows)], "symbol": s} for i, s in enumerate(symbols)]
    if day is not None:
        rows = [{**r, "timestamp": f"{day:%Y-%m-%d} 16:00:00.000"} for r in rows]
    return {"endpoint": "Realtime Bulk Quotes", "data": rows}


# --- the contract -------------------------------------------------------------------------------
def test_the_artificial_sample_a_non_entitled_key_gets_is_a_refusal_not_prices():
    client, _ = serve(ARTIFICIAL)
    with pytest.raises(ProviderMisconfigured, match="artificial sample"):
        client.bulk_quotes(["MSFT", "AAPL", "IBM"])


def test_an_entitled_answer_parses_every_row_as_a_new_york_time_quote(tmp_path):
    path = tmp_path / "bulk.json"
    path.write_text(json.dumps(entitled_body()), encoding="utf-8")
    client, adapter = serve((200, "application/json", path.read_bytes()))
    quotes = client.bulk_quotes(["MSFT", "AAPL", "IBM"])
    assert [q.ticker for q in quotes] == ["MSFT", "AAPL", "IBM"]
    msft = quotes[0]
    assert (msft.open, msft.high, msft.low, msft.close) == (
        Decimal("417.61"),
        Decimal("419.649"),
        Decimal("416.2601"),
        Decimal("418.16"),
    )
    assert msft.volume == 17145307 and msft.previous_close == Decimal("416.72")
    assert msft.day.isoformat() == "2024-10-18"  # 19:59:55 New York, not UTC's next day
    assert adapter.query(0)["symbol"] == ["MSFT,AAPL,IBM"]


@pytest.mark.parametrize(
    "body, error",
    [
        ("synthetic_information_daily_limit_25.json", RateLimited),
        ("synthetic_information_burst_1_per_second.json", RateLimited),
        ("synthetic_error_apikey_missing.json", ProviderMisconfigured),
    ],
)
def test_its_error_bodies_are_classified_like_every_other_functions(body, error):
    client, _ = serve(body)
    with pytest.raises(error):
        client.bulk_quotes(["MSFT"])


def test_more_than_a_hundred_symbols_is_a_programming_error():
    client, adapter = serve()
    with pytest.raises(ValueError):
        client.bulk_quotes([f"T{i}" for i in range(BULK_LIMIT + 1)])
    assert adapter.sent == []


# --- the scheduled refresh with bulk quotes -------------------------------------------------------
def premium_bulk(settings, *, per_day=100, reserve=5) -> None:
    md = dataclasses.replace(settings.PAPERTRADE.market_data, premium=True, bulk_quotes=True)
    quota = dataclasses.replace(
        settings.PAPERTRADE.quota, per_day=per_day, interactive_reserve=reserve
    )
    refresh = dataclasses.replace(settings.PAPERTRADE.refresh, watchlist=())
    settings.PAPERTRADE = dataclasses.replace(
        settings.PAPERTRADE, market_data=md, quota=quota, refresh=refresh
    )


@pytest.fixture
def stale_150(db):
    due = session_date(latest_due_close(timezone.now(), timedelta(minutes=60)))
    names = [f"K{i:03d}" for i in range(150)]
    for name in names:
        store_bars(name, [(due - timedelta(days=7), "10.0000")])
    return names, due


@pytest.mark.django_db
def test_150_stale_tickers_cost_two_bulk_calls(settings, live, fake_av, stale_150):
    names, due = stale_150
    premium_bulk(settings)
    fake_av.route(BULK, "*", entitled_body(names, day=due))
    summary = refresh_prices()
    assert fake_av.count(BULK) == 2 and fake_av.count("TIME_SERIES_DAILY") == 0
    assert len(summary.refreshed) == 150
    assert PriceHistory.objects.filter(timestamp=close_of(due)).count() == 150


@pytest.mark.django_db
def test_a_key_refused_bulk_quotes_falls_back_and_says_so_once(
    settings, live, fake_av, stale_150, caplog, client, django_user_model
):
    names, _ = stale_150
    premium_bulk(settings, per_day=1000)
    fake_av.route(BULK, "*", json.loads((FIXTURES / ARTIFICIAL).read_text(encoding="utf-8")))
    with caplog.at_level(logging.WARNING, logger="marketdata.upstream"):
        summary = refresh_prices()
    assert fake_av.count(BULK) == 1  # refused once; the rest one call a ticker
    assert fake_av.count("TIME_SERIES_DAILY") == 150 and len(summary.refreshed) == 150
    assert [r.message for r in caplog.records].count(
        next(r.message for r in caplog.records if "bulk quotes refused" in r.message)
    ) == 1
    assert bulk_refused()
    note = upstream_status()  # no "live prices paused" banner for one refused function
    assert note is None or note["kind"] != "misconfigured", note
    refresh_prices()
    assert fake_av.count(BULK) == 1  # not asked again for a day
    staff = django_user_model.objects.create_user("ops", password="x" * 12, is_staff=True)
    client.force_login(staff)
    assert 'id="bulk-refused"' in client.get("/market-data/status/").content.decode()
