"""The conservative fill rule (PRODUCT §11.1), pinned on hand-made bars."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from marketdata.port import PricePoint, close_of, day_start
from portfolios.fills import BUY, LIMIT, SELL, STOP, Fill, fill

D = Decimal
DAY = date(2025, 8, 5)
BEFORE = day_start(DAY).replace(hour=3)  # the evening before the session, in UTC
DURING = datetime(2025, 8, 5, 15, 0, tzinfo=UTC)  # 11:00 New York: during the session


def bar(open_: str, high: str, low: str, close: str) -> PricePoint:
    return PricePoint(
        "FILL", D(close), close_of(DAY), "import", open=D(open_), high=D(high), low=D(low),
        close=D(close),
    )  # fmt: skip


@pytest.mark.parametrize(
    "side, kind, trigger, the_bar, expected",
    [
        # buy limit 100
        (BUY, LIMIT, "100", bar("98", "103", "97", "101"), Fill(D("98"), "limit, opened through")),
        (BUY, LIMIT, "100", bar("102", "104", "99.5", "103"), Fill(D("100"), "limit, touched")),
        (BUY, LIMIT, "100", bar("102", "104", "100.01", "103"), None),
        # sell limit 100
        (
            SELL,
            LIMIT,
            "100",
            bar("102", "104", "99", "101"),
            Fill(D("102"), "limit, opened through"),
        ),
        (SELL, LIMIT, "100", bar("97", "100", "96", "99"), Fill(D("100"), "limit, touched")),
        (SELL, LIMIT, "100", bar("97", "99.99", "96", "99"), None),
        # buy stop 100
        (BUY, STOP, "100", bar("103", "105", "102", "104"), Fill(D("103"), "stop, gapped through")),
        (BUY, STOP, "100", bar("97", "101", "96", "99"), Fill(D("100"), "stop, touched")),
        (BUY, STOP, "100", bar("97", "99.99", "96", "99"), None),
        # sell stop 100
        (SELL, STOP, "100", bar("95", "99", "94", "96"), Fill(D("95"), "stop, gapped through")),
        (SELL, STOP, "100", bar("102", "103", "99", "101"), Fill(D("100"), "stop, touched")),
        (SELL, STOP, "100", bar("102", "103", "100.01", "101"), None),
    ],
)
def test_each_rule_on_a_hand_made_bar(side, kind, trigger, the_bar, expected):
    assert fill(side=side, kind=kind, trigger=D(trigger), bar=the_bar, placed_at=BEFORE) == expected


def test_an_order_placed_during_or_after_a_session_is_not_filled_by_its_bar():
    through = bar("90", "95", "89", "94")  # would open through a buy limit of 100
    assert fill(side=BUY, kind=LIMIT, trigger=D(100), bar=through, placed_at=DURING) is None
    late = close_of(DAY)
    assert fill(side=BUY, kind=LIMIT, trigger=D(100), bar=through, placed_at=late) is None
    assert fill(side=BUY, kind=LIMIT, trigger=D(100), bar=through, placed_at=BEFORE) == Fill(
        D("90"), "limit, opened through"
    )


def test_a_bar_without_its_range_fills_nothing():
    bare = PricePoint("FILL", D("90"), close_of(DAY), "import")
    assert fill(side=BUY, kind=LIMIT, trigger=D(100), bar=bare, placed_at=BEFORE) is None


def test_an_order_placed_before_the_open_is_filled_by_that_sessions_bar():
    early = day_start(DAY).replace(hour=12)  # 08:00 New York (UTC−4): before the 09:30 open
    through = bar("90", "95", "89", "94")
    assert fill(side=BUY, kind=LIMIT, trigger=D(100), bar=through, placed_at=early) == Fill(
        D("90"), "limit, opened through"
    )
