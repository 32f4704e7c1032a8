"""Suspected unrecorded splits (PRODUCT §3.11): a day-over-day move beyond ±40 % with no split
recorded on that session is listed on the staff status page."""

import io
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from marketdata.models import CorporateAction
from marketdata.port import ActionKind, Source, close_of, session_date
from marketdata.status import SPLITS_SHOWN, SuspectedSplit, implied_ratio, suspected_splits
from marketdata.tests.factories import store_bars

pytestmark = pytest.mark.django_db
URL = "/market-data/status/"
NOW = close_of(date(2025, 12, 12))  # the fixed dates below are inside its last two years


@pytest.fixture
def staff_client(client, django_user_model):
    ops = django_user_model.objects.create_user(username="ops", password="x" * 12, is_staff=True)
    client.force_login(ops)
    return client


def record_split(ticker: str, day: date, factor: str) -> CorporateAction:
    return CorporateAction.objects.create(
        ticker=ticker,
        kind=ActionKind.SPLIT,
        date=day,
        value=Decimal(factor),
        source=Source.IMPORT,
        fetched_at=timezone.now(),
    )


def store_ten_for_one(ticker: str = "XSPL") -> None:
    """NFLX around its 10-for-1 split of Monday 2025-11-17, as traded."""
    store_bars(
        ticker,
        [
            (date(2025, 11, 13), "1154.23"),
            (date(2025, 11, 14), "1112.17"),
            (date(2025, 11, 17), "110.29"),
            (date(2025, 11, 18), "114.09"),
        ],
    )


def section(body: str, name: str) -> str:
    match = re.search(rf'<section class="card" id="{name}">(.*?)</section>', body, re.S)
    assert match, f"no section {name}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def rows(body: str) -> list[str]:
    """The text of each suspected split's row, tags stripped, spaces squeezed."""
    found = re.findall(r'<tr data-split="[^"]+">(.*?)</tr>', body, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", r).split()) for r in found]


def test_a_ten_for_one_drop_without_a_recorded_split_is_listed():
    store_ten_for_one()

    assert suspected_splits(now=NOW) == [
        SuspectedSplit(
            ticker="XSPL",
            session=date(2025, 11, 17),
            previous_close=Decimal("1112.17"),
            close=Decimal("110.29"),
            change_pct=Decimal("-90.1"),
            ratio="10-for-1",
        )
    ]


def test_the_same_drop_with_its_split_recorded_is_not_listed_nor_is_the_day_after():
    store_ten_for_one()
    record_split("XSPL", date(2025, 11, 17), "10")

    # The 18th is compared with the 17th (110.29), not with the close before the split.
    assert suspected_splits(now=NOW) == []


def test_a_split_recorded_on_another_day_or_a_dividend_does_not_explain_the_move():
    store_ten_for_one()
    record_split("XSPL", date(2025, 11, 14), "10")  # a day early
    record_split("OTHR", date(2025, 11, 17), "10")  # another ticker
    CorporateAction.objects.create(
        ticker="XSPL",
        kind=ActionKind.DIVIDEND,
        date=date(2025, 11, 17),
        value=Decimal("0.5"),
        source=Source.IMPORT,
        fetched_at=timezone.now(),
    )

    assert [(s.ticker, s.session) for s in suspected_splits(now=NOW)] == [
        ("XSPL", date(2025, 11, 17))
    ]


def test_a_fifty_percent_jump_looks_like_a_reverse_split_and_is_listed():
    store_bars("JUMP", [(date(2025, 11, 3), "20.00"), (date(2025, 11, 4), "30.00")])

    [jump] = suspected_splits(now=NOW)

    assert (jump.ticker, jump.session) == ("JUMP", date(2025, 11, 4))
    assert (jump.previous_close, jump.close) == (Decimal("20"), Decimal("30"))
    assert jump.change_pct == Decimal("50.0")
    assert jump.ratio == "2-for-3"


@pytest.mark.parametrize("close", ["61.00", "139.00"])  # -39 %, +39 %
def test_a_move_within_forty_percent_is_not_listed(close):
    store_bars("CALM", [(date(2025, 11, 3), "100.00"), (date(2025, 11, 4), close)])
    assert suspected_splits(now=NOW) == []


def test_each_ticker_is_compared_with_its_own_previous_bar():
    # Sorted by ticker, AAAA's last close (100) is followed by BBBB's first (10): no move.
    store_bars("AAAA", [(date(2025, 11, 3), "100.00"), (date(2025, 11, 4), "101.00")])
    store_bars("BBBB", [(date(2025, 11, 3), "10.00"), (date(2025, 11, 4), "10.10")])
    assert suspected_splits(now=NOW) == []


def test_only_the_last_two_years_are_read():
    store_bars("OLDS", [(date(2023, 11, 1), "100.00"), (date(2023, 11, 2), "50.00")])
    assert suspected_splits(now=NOW) == []
    assert len(suspected_splits(now=close_of(date(2024, 1, 2)))) == 1


def test_they_are_listed_newest_first():
    store_bars("ZOLD", [(date(2025, 10, 1), "100.00"), (date(2025, 10, 2), "20.00")])
    store_bars("BNEW", [(date(2025, 11, 3), "100.00"), (date(2025, 11, 4), "300.00")])
    store_bars("ANEW", [(date(2025, 11, 3), "100.00"), (date(2025, 11, 4), "25.00")])

    found = suspected_splits(now=NOW)

    assert [(s.ticker, s.ratio) for s in found] == [
        ("ANEW", "4-for-1"),
        ("BNEW", "1-for-3"),
        ("ZOLD", "5-for-1"),
    ]


def test_it_is_one_query_whatever_the_number_of_tickers(django_assert_num_queries):
    for i in range(5):
        store_ten_for_one(f"T{i}X")
    record_split("T0X", date(2025, 11, 17), "10")

    with django_assert_num_queries(1):
        found = suspected_splits(now=NOW)

    assert [s.ticker for s in found] == ["T1X", "T2X", "T3X", "T4X"]


@pytest.mark.parametrize(
    ("previous", "close", "ratio"),
    [
        ("1112.17", "110.29", "10-for-1"),
        ("100", "49", "2-for-1"),
        ("100", "55", "2-for-1"),
        ("100", "65", "3-for-2"),
        ("100", "34", "3-for-1"),
        ("100", "5.1", "20-for-1"),
        ("10", "14.5", "2-for-3"),
        ("10", "19", "1-for-2"),
        ("0.5", "5.2", "1-for-10"),
    ],
)
def test_the_ratio_is_the_nearest_simple_split(previous, close, ratio):
    assert implied_ratio(Decimal(previous), Decimal(close)) == ratio


def test_the_status_page_lists_them(staff_client):
    day = session_date(timezone.now()) - timedelta(days=10)
    store_bars("XSPL", [(day - timedelta(days=1), "1112.17"), (day, "110.29")])

    body = staff_client.get(URL).content.decode()

    text = section(body, "suspected-splits")
    assert "Suspected unrecorded splits" in text
    assert "manage.py import_prices --actions FILE" in text
    assert rows(body) == [f"XSPL {day:%a %Y-%m-%d} $1,112.17 $110.29 -90.1 % about 10-for-1"]


def test_the_status_page_says_when_there_are_none(staff_client):
    day = session_date(timezone.now()) - timedelta(days=10)
    store_bars("XSPL", [(day - timedelta(days=1), "1112.17"), (day, "110.29")])
    record_split("XSPL", day, "10")

    text = section(staff_client.get(URL).content.decode(), "suspected-splits")

    assert "None: every day-over-day move beyond ±40 % has a recorded split." in text
    assert "XSPL" not in text


def test_the_status_page_shows_the_newest_and_counts_the_rest(staff_client):
    first = session_date(timezone.now()) - timedelta(days=SPLITS_SHOWN + 20)
    # Every close ten times or a tenth of the one before: each bar but the first is a suspect.
    closes = [(first + timedelta(days=i), "10.00" if i % 2 else "1.00") for i in range(52)]
    store_bars("WILD", closes)

    body = staff_client.get(URL).content.decode()

    shown = rows(body)
    assert len(shown) == SPLITS_SHOWN
    assert shown[0].startswith(f"WILD {closes[-1][0]:%a %Y-%m-%d} $1.00 $10.00 +900.0 %")
    assert f"The newest {SPLITS_SHOWN} of 51 shown." in section(body, "suspected-splits")


def test_the_bundled_demo_data_has_every_split_recorded():
    call_command("load_demo_prices", stdout=io.StringIO())
    demo_end = close_of(date(2025, 12, 12))  # the bundled files run to 2025-12-12

    assert suspected_splits(now=demo_end) == []

    CorporateAction.objects.filter(ticker="NFLX", kind=ActionKind.SPLIT).delete()

    [nflx] = suspected_splits(now=demo_end)
    assert (nflx.ticker, nflx.session, nflx.ratio) == ("NFLX", date(2025, 11, 17), "10-for-1")
    assert (nflx.previous_close, nflx.close) == (Decimal("1112.17"), Decimal("110.29"))
