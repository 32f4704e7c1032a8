"""Split-adjusted prices, computed on read (PRODUCT §3.11): the stored bars stay as traded; the
port answers them in today's shares on request, and a day's change across a split compares like
with like."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketdata.actions import NewAction, store_actions
from marketdata.models import PriceHistory
from marketdata.port import ActionKind, Source
from marketdata.tests.factories import store_bars
from marketdata.tiers import TieredMarketData

pytestmark = pytest.mark.django_db

THU, FRI, MON, TUE = date(2024, 2, 29), date(2024, 3, 1), date(2024, 3, 4), date(2024, 3, 5)


@pytest.fixture
def port(db) -> TieredMarketData:
    store_bars("SPL", [(THU, "100.0000"), (FRI, "101.0000"), (MON, "50.2500"), (TUE, "51.0000")])
    store_actions([NewAction("SPL", ActionKind.SPLIT, MON, Decimal("2"))], source=Source.IMPORT)
    return TieredMarketData()


def test_the_history_as_traded_is_what_was_stored(port):
    closes = [p.close for p in port.get_price_history("SPL", THU, TUE)]
    assert closes == [Decimal("100.0000"), Decimal("101.0000"), Decimal("50.2500"), Decimal("51")]


def test_adjusted_the_bars_before_a_split_are_divided_by_its_factor(port):
    adjusted = port.get_price_history("SPL", THU, TUE, adjusted=True)
    assert [p.close for p in adjusted] == [
        Decimal("50.0000"),
        Decimal("50.5000"),
        Decimal("50.2500"),
        Decimal("51.0000"),
    ]
    assert [p.volume for p in adjusted] == [2000, 2000, 1000, 1000]
    assert adjusted[0].high == Decimal("50.5000")  # 101 / 2: every price, not only the close
    # Stored bars are untouched.
    assert PriceHistory.objects.get(ticker="SPL", timestamp__date=THU).close == Decimal("100")


def test_a_later_split_compounds_and_a_reverse_split_multiplies(port):
    store_actions([NewAction("SPL", ActionKind.SPLIT, TUE, Decimal("0.5"))], source=Source.IMPORT)
    adjusted = port.get_price_history("SPL", THU, TUE, adjusted=True)
    # THU: ÷ 2 (MON) ÷ 0.5 (TUE) = 100; MON: ÷ 0.5 = 100.50.
    assert [p.close for p in adjusted] == [
        Decimal("100.0000"),
        Decimal("101.0000"),
        Decimal("100.5000"),
        Decimal("51.0000"),
    ]


def test_the_price_at_a_moment_adjusted_and_not(port):
    friday_evening = datetime(2024, 3, 1, 23, 0, tzinfo=UTC)
    assert port.get_price_at("SPL", friday_evening).price == Decimal("101.0000")
    assert port.get_price_at("SPL", friday_evening, adjusted=True).price == Decimal("50.5000")


def test_the_day_change_on_a_split_day_compares_like_with_like(port):
    monday_evening = datetime(2024, 3, 4, 23, 0, tzinfo=UTC)
    at_split = port.get_price_at("SPL", monday_evening)
    assert (at_split.price, at_split.previous_close) == (Decimal("50.2500"), Decimal("50.5000"))
    PriceHistory.objects.filter(ticker="SPL", timestamp__date=TUE).delete()
    latest = port.get_current_prices(["SPL"])["SPL"]  # the split day is the latest bar
    assert latest.previous_close == Decimal("50.5000")  # 101 / 2, not 101


def test_current_prices_stay_one_query_with_splits_recorded(port):
    store_bars("OTHER", [(MON, "10.0000"), (TUE, "11.0000")])
    with CaptureQueriesContext(connection) as captured:
        points = port.get_current_prices(["SPL", "OTHER"])
    queries = [q["sql"] for q in captured.captured_queries if "papertrade_cache" not in q["sql"]]
    assert len(queries) == 1, queries
    assert points["SPL"].previous_close == Decimal("50.2500")  # TUE against MON: no split
    assert points["OTHER"].previous_close == Decimal("10.0000")
