"""``load_demo_prices``: the bundled demo set, and a database set up with an earlier one."""

from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from marketdata.models import PriceHistory
from marketdata.port import Source
from marketdata.tests.factories import store_bars
from marketdata.tiers import demo_as_of
from marketdata.wiring import get_market_data

pytestmark = pytest.mark.django_db

DEMO_TICKERS = [
    "AAPL", "ADBE", "AMZN", "BAC", "BRK.B", "DIS", "GOOGL", "HD", "JNJ", "JPM",
    "MA", "META", "MSFT", "NFLX", "NVDA", "PG", "TSLA", "UNH", "V", "XOM",
]  # fmt: skip


def load() -> str:
    out = StringIO()
    call_command("load_demo_prices", stdout=out)
    return out.getvalue()


def test_it_loads_twenty_tickers_of_one_window_and_a_rerun_changes_nothing():
    first = load()

    tickers = sorted(PriceHistory.objects.values_list("ticker", flat=True).distinct())
    assert tickers == DEMO_TICKERS
    for ticker in DEMO_TICKERS:
        days = PriceHistory.objects.daily(ticker).values_list("timestamp", flat=True)
        assert len(days) == 100
    assert demo_as_of() == date(2025, 12, 12)
    assert get_market_data().get_current_price("AAPL").price == Decimal("278.2800")
    assert "2,000 bars inserted" in first
    again = load()
    assert "0 bars inserted, 0 updated" in again


def test_an_earlier_demo_set_is_retired_and_nothing_else_is_touched(
    django_capture_on_commit_callbacks,
):
    # What `make setup` stored before: the 2023 AAPL and IBM files (a few of their bars).
    store_bars("AAPL", [(date(1999, 11, 1), "80.0000"), (date(2023, 11, 10), "186.4000")])
    store_bars("IBM", [(date(2023, 6, 22), "138.0000"), (date(2023, 11, 10), "149.0200")])
    # Not the earlier demo: fetched from the provider, or imported outside its range.
    store_bars("IBM", [(date(2023, 11, 9), "147.0000")], source=Source.ALPHA_VANTAGE)
    store_bars("IBM", [(date(2024, 1, 2), "160.0000")])
    assert demo_as_of() == date(2024, 1, 2)  # cached, as the pages would have it

    with django_capture_on_commit_callbacks(execute=True):
        out = load()

    assert "Removed 4 bars of an earlier demo set" in out
    aapl = PriceHistory.objects.daily("AAPL")
    assert aapl.count() == 100 and aapl.earliest("timestamp").timestamp.date() == date(2025, 7, 24)
    ibm = PriceHistory.objects.daily("IBM").order_by("timestamp")
    assert [(b.source, str(b.close)) for b in ibm] == [
        (Source.ALPHA_VANTAGE, "147.0000"),
        (Source.IMPORT, "160.0000"),
    ]
    assert demo_as_of() == date(2025, 12, 12)  # the cached banner date was dropped
    assert "Removed" not in load()
