"""``import_prices --from-file``: CSV files become daily bars, whole files or nothing."""

import csv
import os
import signal
import threading
import time
from datetime import date
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from marketdata import importing
from marketdata.importing import (
    ImportResult,
    PriceFileError,
    _checked,
    _commit,
    import_price_file,
    import_price_files,
)
from marketdata.models import Interval, PriceHistory
from marketdata.port import Source, close_of
from marketdata.storage import copy_daily_bars
from marketdata.tests.factories import store_bars
from marketdata.wiring import get_market_data

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
OUR_IBM = REPO / "marketdata" / "tests" / "fixtures" / "prices-2023" / "IBM.csv"
OUR_AAPL = REPO / "marketdata" / "tests" / "fixtures" / "prices-2023" / "AAPL.csv"
AV_IBM = (
    Path(__file__).resolve().parent / "fixtures" / "time_series_daily_IBM_compact_2026-05-15.csv"
)

HEADER = "date,open,high,low,close,volume"
GOOD_ROWS = [
    "2023-11-06,10.0000,11.0000,9.5000,10.5000,1000",
    "2023-11-07,10.5000,12.0000,10.0000,11.7500,2000",
    "2023-11-09,11.7500,11.8000,11.0000,11.2500,1500",
]


def write_csv(directory: Path, name: str, lines: list[str]) -> Path:
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


def bars_in_file(path: Path) -> dict:
    """What the file says, read independently of the importer: {timestamp: (o, h, l, c, v)}."""
    with path.open(newline="") as f:
        reader = csv.reader(f)
        next(reader)
        return {
            close_of(date.fromisoformat(day)): (*(Decimal(p) for p in prices), int(volume))
            for day, *prices, volume in reader
        }


def bars_stored(ticker: str) -> dict:
    return {
        ts: tuple(rest)
        for ts, *rest in PriceHistory.objects.daily(ticker).values_list(
            "timestamp", "open", "high", "low", "close", "volume"
        )
    }


# --- the two layouts ------------------------------------------------------------------------


def test_it_loads_our_csv_layout():
    result = import_price_file(path=OUR_IBM)

    assert (result.ticker, result.rows, result.inserted, result.updated) == ("IBM", 100, 100, 0)
    assert bars_stored("IBM") == bars_in_file(OUR_IBM)
    last = PriceHistory.objects.daily("IBM").latest("timestamp")
    assert last.timestamp == close_of(date(2023, 11, 10))
    assert (last.open, last.high, last.low, last.close, last.volume) == (
        Decimal("147.4400"),
        Decimal("149.1700"),
        Decimal("146.8500"),
        Decimal("149.0200"),
        3179541,
    )
    assert (last.source, last.interval) == (Source.IMPORT, Interval.DAILY)


def test_it_loads_alpha_vantages_own_csv_newest_first():
    result = import_price_file(path=AV_IBM, ticker="ibm")

    assert (result.ticker, result.inserted) == ("IBM", 100)
    assert bars_stored("IBM") == bars_in_file(AV_IBM)
    last = PriceHistory.objects.daily("IBM").latest("timestamp")
    assert (last.timestamp, last.close) == (close_of(date(2026, 5, 15)), Decimal("219.3000"))


def test_a_bar_is_stamped_at_the_new_york_close_in_utc(tmp_path):
    path = write_csv(tmp_path, "XYZ.csv", [HEADER, "2023-07-03,1.0000,1.0000,1.0000,1.0000,0"])

    import_price_file(path=path)

    bar = PriceHistory.objects.get(ticker="XYZ")
    assert bar.timestamp.isoformat() == "2023-07-03T20:00:00+00:00"  # 16:00 EDT


def test_it_reads_crlf_line_endings_and_a_byte_order_mark(tmp_path):
    path = tmp_path / "ABC.csv"
    path.write_bytes(("\ufeff" + "\r\n".join([HEADER, *GOOD_ROWS]) + "\r\n").encode())

    result = import_price_file(path=path)

    assert result.inserted == 3
    assert PriceHistory.objects.get(timestamp=close_of(date(2023, 11, 9))).close == Decimal("11.25")


def test_it_needs_a_ticker_when_the_file_name_is_none():
    with pytest.raises(PriceFileError, match="cannot tell the ticker from the file name"):
        import_price_file(path=AV_IBM)

    assert not PriceHistory.objects.exists()


def test_bars_either_side_of_the_dst_changes_are_stamped_at_the_close(tmp_path):
    days = ["2023-03-10", "2023-03-13", "2023-11-03", "2023-11-06", "1999-01-04", "2030-06-03"]
    path = write_csv(tmp_path, "XYZ.csv", [HEADER, *(f"{d},1,1,1,1,0" for d in days)])

    import_price_file(path=path)

    assert sorted(PriceHistory.objects.values_list("timestamp", flat=True)) == sorted(
        close_of(date.fromisoformat(d)) for d in days
    )


def test_rows_in_other_spellings_load_with_the_same_values(tmp_path):
    path = write_csv(
        tmp_path,
        "ABC.csv",
        [
            HEADER,
            '"2023-11-06","10.0000","11","9.5","10.5000","1000"',
            " 2023-11-07 , +10.5 ,12.0000, 10 ,11.75, 2000 ",
            "2023-11-09,11.7500,11.8000,11.0000,11.2500,1500",
        ],
    )

    result = import_price_file(path=path)

    assert result.inserted == 3
    assert bars_stored("ABC") == bars_in_file(write_csv(tmp_path, "REF.csv", [HEADER, *GOOD_ROWS]))


def test_high_and_low_are_compared_exactly_beyond_float_precision(tmp_path):
    # As floats these two are equal; as decimals the high is below the low.
    big, bigger = "99999999999999.9998", "99999999999999.9999"
    row = f"2023-11-08,{big},{big},{bigger},{big},1"
    path = write_csv(tmp_path, "ABC.csv", [HEADER, row])

    with pytest.raises(PriceFileError, match="ABC.csv:2: high 99999999999999.9998 is below low"):
        import_price_file(path=path)

    equal = row.replace(bigger, big)
    assert import_price_file(path=write_csv(tmp_path, "ABC.csv", [HEADER, equal])).inserted == 1


def test_several_files_in_one_transaction_each_store_only_their_own_rows(tmp_path):
    first = write_csv(tmp_path, "ABC.csv", [HEADER, *GOOD_ROWS])
    second = write_csv(tmp_path, "XYZ.csv", [HEADER, GOOD_ROWS[0]])

    with transaction.atomic():
        results = [import_price_file(path=first), import_price_file(path=second)]

    assert [(r.ticker, r.inserted) for r in results] == [("ABC", 3), ("XYZ", 1)]
    assert PriceHistory.objects.daily("ABC").count() == 3
    assert PriceHistory.objects.daily("XYZ").count() == 1


@pytest.mark.postgres  # COPY is PostgreSQL's
def test_the_copy_load_never_lets_a_provider_overwrite_an_imported_bar():
    store_bars("ABC", [(date(2023, 11, 6), "10.0000")], source=Source.IMPORT)
    store_bars("ABC", [(date(2023, 11, 7), "10.0000")], source=Source.ALPHA_VANTAGE)

    counts = copy_daily_bars(
        chunks=lambda: [
            ("ABC", "2023-11-06,20,21,19,20,5\n2023-11-07,20,21,19,20,5\n"),
            ("ABC", "2023-11-08,1,1,1,1,\n"),
            ("XYZ", "2023-11-08,1,1,1,1,1\n"),
        ],
        ranges={"ABC": (date(2023, 11, 6), date(2023, 11, 8)), "XYZ": (date(2023, 11, 8),) * 2},
        source=Source.ALPHA_VANTAGE,
        fetched_at=timezone.now(),
    )

    assert counts == {"ABC": (1, 1), "XYZ": (1, 0)}
    closes = dict(PriceHistory.objects.daily("ABC").values_list("timestamp", "close"))
    assert closes == {
        close_of(date(2023, 11, 6)): Decimal("10.0000"),  # imported by hand: kept
        close_of(date(2023, 11, 7)): Decimal("20.0000"),
        close_of(date(2023, 11, 8)): Decimal("1.0000"),
    }
    assert (
        PriceHistory.objects.get(ticker="ABC", timestamp=close_of(date(2023, 11, 8))).volume is None
    )


@pytest.mark.postgres  # COPY is PostgreSQL's
def test_a_bar_stored_after_the_check_sends_the_copy_down_the_upsert():
    # The ranges say nothing is stored (as when the check ran); then a bar landed.
    store_bars("ABC", [(date(2023, 11, 7), "10.0000")], source=Source.ALPHA_VANTAGE)
    rows = "2023-11-06,20,21,19,20,5\n2023-11-07,20,21,19,20,5\n"

    counts = copy_daily_bars(
        chunks=lambda: [("ABC", rows)],
        ranges={"ABC": (date(2023, 11, 6), date(2023, 11, 6))},
        source=Source.IMPORT,
        fetched_at=timezone.now(),
    )

    assert counts == {"ABC": (1, 1)}
    closes = dict(PriceHistory.objects.daily("ABC").values_list("timestamp", "source"))
    assert closes == {
        close_of(date(2023, 11, 6)): Source.IMPORT,
        close_of(date(2023, 11, 7)): Source.IMPORT,
    }


# --- idempotent upserts ---------------------------------------------------------------------


def test_rerunning_a_file_reports_all_unchanged_and_changes_nothing():
    import_price_file(path=OUR_IBM)
    before = dict(PriceHistory.objects.values_list("timestamp", "fetched_at"))

    again = import_price_file(path=OUR_IBM)

    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 100)
    assert dict(PriceHistory.objects.values_list("timestamp", "fetched_at")) == before


def test_a_changed_close_is_reported_updated(tmp_path):
    import_price_file(path=write_csv(tmp_path, "ABC.csv", [HEADER, *GOOD_ROWS]))
    changed = GOOD_ROWS[1].replace(",11.7500,", ",11.8000,")

    result = import_price_file(
        path=write_csv(tmp_path, "ABC.csv", [HEADER, GOOD_ROWS[0], changed, GOOD_ROWS[2]])
    )

    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 2)
    bar = PriceHistory.objects.get(ticker="ABC", timestamp=close_of(date(2023, 11, 7)))
    assert bar.close == Decimal("11.8000")


def test_an_import_overwrites_a_differing_provider_bar(tmp_path):
    store_bars("ABC", [(date(2023, 11, 6), "99.0000")], source=Source.ALPHA_VANTAGE)

    result = import_price_file(path=write_csv(tmp_path, "ABC.csv", [HEADER, *GOOD_ROWS]))

    assert (result.inserted, result.updated) == (2, 1)
    bar = PriceHistory.objects.get(ticker="ABC", timestamp=close_of(date(2023, 11, 6)))
    assert (bar.close, bar.source) == (Decimal("10.5000"), Source.IMPORT)


def test_it_loads_in_batches_with_the_same_outcome():
    seen = []

    class Recorder:
        def reset(self, total=None):
            seen.append(("total", total))

        def update(self, n=1):
            seen.append(n)

    result = import_price_file(path=OUR_IBM, progress=Recorder(), batch_size=30)

    assert result.inserted == 100
    assert bars_stored("IBM") == bars_in_file(OUR_IBM)
    assert seen == [("total", 100), 30, 30, 30, 10]


def test_an_interrupted_load_stores_nothing_of_the_file():
    class CtrlC:
        def reset(self, total=None):
            pass

        def update(self, n=1):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_price_file(path=OUR_IBM, progress=CtrlC(), batch_size=30)

    assert not PriceHistory.objects.exists()


def test_a_file_changed_between_check_and_load_loads_nothing(tmp_path):
    path = write_csv(tmp_path, "ABC.csv", [HEADER, *GOOD_ROWS])

    class Rewriter:  # reset() comes between the check and the load
        def reset(self, total=None):
            path.write_text("\n".join([HEADER, *GOOD_ROWS, GOOD_ROWS[0]]) + "\n")

        def update(self, n=1):
            pass

    with pytest.raises(PriceFileError, match="ABC.csv: the file changed while it was being loaded"):
        import_price_file(path=path, progress=Rewriter())

    assert not PriceHistory.objects.exists()


def test_the_real_aapl_history_loads_in_full():
    result = import_price_file(path=OUR_AAPL)

    assert result.inserted == 6047
    assert PriceHistory.objects.daily("AAPL").count() == 6047
    # As traded, not split-adjusted: the 2020 4:1 split shows as a drop.
    closes = dict(PriceHistory.objects.daily("AAPL").values_list("timestamp", "close"))
    assert closes[close_of(date(2020, 8, 28))] == Decimal("499.2300")
    assert closes[close_of(date(2020, 8, 31))] == Decimal("129.0400")


def test_the_cached_current_price_is_forgotten_once_the_import_commits(
    tmp_path, django_capture_on_commit_callbacks
):
    store_bars("AAPL", [(date(2023, 11, 9), "182.4100")])
    assert get_market_data().get_current_price("AAPL").price == Decimal("182.4100")  # cached now
    path = write_csv(
        tmp_path, "AAPL.csv", [HEADER, "2023-11-10,183.9700,186.5700,183.5300,186.4000,66177922"]
    )

    with django_capture_on_commit_callbacks() as callbacks:
        import_price_file(path=path)
        # Until the commit, other processes still read the old bar: the cache may keep it.
        assert get_market_data().get_current_price("AAPL").price == Decimal("182.4100")
    for callback in callbacks:
        callback()

    assert get_market_data().get_current_price("AAPL").price == Decimal("186.4000")


# --- bad files load nothing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_row", "complaint"),
    [
        ("2023-11-31,10.0000,11.0000,9.5000,10.5000,1000", "date '2023-11-31' is not a date"),
        ("11/08/2023,10.0000,11.0000,9.5000,10.5000,1000", "date '11/08/2023' is not a date"),
        ("2023-11-08,-10.0000,11.0000,9.5000,10.5000,1000", "open -10.0000 is not positive"),
        ("2023-11-08,0,11.0000,9.5000,10.5000,1000", "open 0 is not positive"),
        ("2023-11-08,10.0000,11.0000,9.5000,10.50001,1000", "close 10.50001 has more than 4"),
        ("2023-11-08,10.0000,9.0000,9.5000,9.2500,1000", "high 9.0000 is below low 9.5000"),
        ("2023-11-08,10.0000,NaN,9.5000,10.5000,1000", "high 'NaN' is not a finite number"),
        ("2023-11-08,10.0000,11.0000,9.5000,1e1,1000", "close '1e1' is not a plain decimal"),
        ("2023-11-08,10.0000,11.0000,abc,10.5000,1000", "low 'abc' is not a number"),
        ("2023-11-08,10.0000,11.0000,9.5000,10.5000", "expected 6 columns, found 5"),
        ("2023-11-08,10.0000,11.0000,9.5000,10.5000,1000,7", "expected 6 columns, found 7"),
        ("2023-11-08,10.0000,11.0000,9.5000,10.5000,-5", "volume '-5' is not a whole number"),
        ("2023-11-08,10.0000,11.0000,9.5000,10.5000,1.5", "volume '1.5' is not a whole number"),
        ("2023-11-06,10.0000,11.0000,9.5000,10.5000,1000", "2023-11-06 appears on an earlier"),
    ],
)
def test_one_bad_row_loads_nothing_and_is_named_by_file_and_line(tmp_path, bad_row, complaint):
    path = write_csv(
        tmp_path, "ABC.csv", [HEADER, GOOD_ROWS[0], GOOD_ROWS[1], bad_row, GOOD_ROWS[2]]
    )

    with pytest.raises(PriceFileError) as caught:
        import_price_file(path=path)

    assert caught.value.count == 1
    assert caught.value.problems[0].startswith(f"{path}:4: ")
    assert complaint in caught.value.problems[0]
    assert not PriceHistory.objects.exists()


@pytest.mark.parametrize("already_stored", [False, True])  # a first load, or an upsert
@pytest.mark.parametrize(
    ("bad_row", "complaint"),
    [
        ("2023-11-08,10.0000,9.0000,9.5000,9.2500,1000", "high 9.0000 is below low 9.5000"),
        ("2023-11-08,10.0000,11.0000,9.5000,0.0000,1000", "close 0.0000 is not positive"),
    ],
)
def test_a_plain_row_that_is_no_bar_is_found_where_it_is_written(
    tmp_path, bad_row, complaint, already_stored
):
    """A plain row's shape is all the first read checks; that a price is positive and the high
    at least the low is checked as the rows are written (in SQL on PostgreSQL), and then the
    parser names the row. Nothing of the file is kept, and a bar stored before is unchanged."""
    if already_stored:
        store_bars("ABC", [(date(2023, 11, 7), "20.0000")], source=Source.ALPHA_VANTAGE)
    path = write_csv(
        tmp_path, "ABC.csv", [HEADER, GOOD_ROWS[0], GOOD_ROWS[1], bad_row, GOOD_ROWS[2]]
    )

    with pytest.raises(PriceFileError) as caught:
        import_price_file(path=path)

    assert caught.value.lines() == [f"{path}:4: {complaint}"]
    stored = list(PriceHistory.objects.values_list("close", flat=True))
    assert stored == ([Decimal("20.0000")] if already_stored else [])


def test_in_a_batch_only_the_file_with_a_bad_plain_row_fails(tmp_path):
    good = write_csv(tmp_path, "GOOD.csv", [HEADER, *GOOD_ROWS])
    bad = write_csv(
        tmp_path, "BAD.csv", [HEADER, GOOD_ROWS[0], "2023-11-07,1.0000,0.5000,0.9000,1.0000,1"]
    )

    outcomes = list(import_price_files([good, bad]))

    assert isinstance(outcomes[0], ImportResult) and outcomes[0].inserted == len(GOOD_ROWS)
    assert isinstance(outcomes[1], PriceFileError)
    assert outcomes[1].lines() == [f"{bad}:3: high 0.5000 is below low 0.9000"]
    assert set(PriceHistory.objects.values_list("ticker", flat=True)) == {"GOOD"}


def test_it_reports_every_bad_row_up_to_twenty(tmp_path):
    bad = [f"2023-10-{day:02},1.0000,0.5000,0.9000,1.0000,1" for day in range(1, 26)]
    path = write_csv(tmp_path, "ABC.csv", [HEADER, *GOOD_ROWS, *bad])

    with pytest.raises(PriceFileError) as caught:
        import_price_file(path=path)

    lines = caught.value.lines()
    assert caught.value.count == 25
    assert lines[0] == f"{path}:5: high 0.5000 is below low 0.9000"
    assert lines[19].startswith(f"{path}:24: ")
    assert lines[20:] == [f"{path}: … and 5 more"]


def test_it_refuses_a_file_with_another_header(tmp_path):
    path = write_csv(tmp_path, "ABC.csv", ["day,o,h,l,c,v", *GOOD_ROWS])

    with pytest.raises(PriceFileError, match=r"ABC\.csv:1: the header should be date,open"):
        import_price_file(path=path)

    assert not PriceHistory.objects.exists()


def test_it_refuses_an_empty_file(tmp_path):
    path = write_csv(tmp_path, "ABC.csv", [])

    with pytest.raises(PriceFileError, match=r"ABC\.csv: the file is empty"):
        import_price_file(path=path)


def test_a_missing_file_is_named(tmp_path):
    path = tmp_path / "NOPE.csv"

    with pytest.raises(PriceFileError, match=f"{path}: no such file"):
        import_price_file(path=path)


# --- the command ----------------------------------------------------------------------------


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_prices", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_loads_files_and_sums_up():
    out, _ = run("--from-file", str(OUR_AAPL), str(OUR_IBM))

    assert out.splitlines()[-1] == (
        "Imported 2 files: 6,147 rows inserted, 0 updated, 0 unchanged, 0 errors."
    )
    assert PriceHistory.objects.count() == 6147


def test_the_command_takes_the_ticker_when_given():
    out, _ = run("--from-file", str(AV_IBM), "--ticker", "IBM")

    assert "→ IBM: 100 inserted" in out
    assert PriceHistory.objects.daily("IBM").count() == 100


def test_the_command_fails_on_a_bad_file(tmp_path):
    path = write_csv(tmp_path, "ABC.csv", [HEADER, GOOD_ROWS[0], "2023-11-07,1,2,3,4,5"])

    with pytest.raises(CommandError, match="1 of 1 file could not be loaded"):
        run("--from-file", str(path))

    assert not PriceHistory.objects.exists()


def test_a_good_file_loads_beside_a_bad_one(tmp_path):
    bad = write_csv(tmp_path, "ABC.csv", [HEADER, GOOD_ROWS[0], "2023-11-07,1,2,3,4,5"])
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError):
        call_command("import_prices", "--from-file", str(bad), str(OUR_IBM), stdout=out, stderr=err)

    assert err.getvalue() == f"{bad}:3: high 2 is below low 3\n"
    assert out.getvalue().splitlines()[-1] == (
        "Imported 1 of 2 files: 100 rows inserted, 0 updated, 0 unchanged, 1 error."
    )
    assert set(PriceHistory.objects.values_list("ticker", flat=True)) == {"IBM"}


def test_files_commit_in_groups_and_a_bad_one_fails_alone(tmp_path):
    files = [write_csv(tmp_path, f"T{i}.csv", [HEADER, *GOOD_ROWS]) for i in range(5)]
    files[3].write_text("\n".join([HEADER, GOOD_ROWS[0], GOOD_ROWS[0]]) + "\n")

    outcomes = list(import_price_files(files, rows_per_commit=4))

    # T0 and T1 make 6 rows ≥ 4: committed; T3 is refused before T2's group is committed.
    assert [type(o).__name__ for o in outcomes] == [
        "ImportResult",
        "ImportResult",
        "PriceFileError",
        "ImportResult",
        "ImportResult",
    ]
    assert "T3.csv:3: the date 2023-11-06 appears on an earlier line too" in str(outcomes[2])
    results = [o for o in outcomes if not isinstance(o, PriceFileError)]
    assert [(o.ticker, o.inserted) for o in results] == [("T0", 3), ("T1", 3), ("T2", 3), ("T4", 3)]
    assert PriceHistory.objects.filter(ticker="T3").count() == 0
    assert PriceHistory.objects.count() == 12


def test_files_of_one_ticker_are_loaded_in_order_the_last_one_winning(tmp_path):
    first = write_csv(tmp_path, "a.csv", [HEADER, *GOOD_ROWS])
    changed = GOOD_ROWS[2].replace(",11.2500,", ",11.3000,")
    second = write_csv(tmp_path, "b.csv", [HEADER, changed])

    outcomes = list(import_price_files([first, second], ticker="ABC"))

    assert [(o.inserted, o.updated, o.unchanged) for o in outcomes] == [(3, 0, 0), (0, 1, 0)]
    bar = PriceHistory.objects.get(ticker="ABC", timestamp=close_of(date(2023, 11, 9)))
    assert bar.close == Decimal("11.3000")


def test_a_file_changed_after_its_check_fails_alone_in_its_group(tmp_path):
    files = [write_csv(tmp_path, f"T{i}.csv", [HEADER, *GOOD_ROWS]) for i in range(3)]
    group = [_checked(path, None, None) for path in files]
    files[1].write_text("\n".join([HEADER, *GOOD_ROWS, "2023-11-10,1,1,1,1,1"]) + "\n")

    outcomes = _commit(group)

    assert isinstance(outcomes[1], PriceFileError)
    assert "T1.csv: the file changed while it was being loaded" in str(outcomes[1])
    assert [(o.ticker, o.inserted) for o in (outcomes[0], outcomes[2])] == [("T0", 3), ("T2", 3)]
    assert sorted(set(PriceHistory.objects.values_list("ticker", flat=True))) == ["T0", "T2"]


def test_a_missing_file_fails_the_command_naming_it(tmp_path):
    err = StringIO()

    with pytest.raises(CommandError):
        call_command(
            "import_prices",
            "--from-file",
            str(tmp_path / "NOPE.csv"),
            stdout=StringIO(),
            stderr=err,
        )

    assert err.getvalue() == f"{tmp_path / 'NOPE.csv'}: no such file\n"


def test_tickers_cannot_be_fetched_without_a_provider_key(settings):
    settings.ALPHA_VANTAGE_API_KEY = ""
    with pytest.raises(CommandError, match="set ALPHA_VANTAGE_API_KEY to fetch prices"):
        run("AAPL", "IBM")


def test_sigterm_keeps_what_was_committed_and_says_how_to_finish(tmp_path, monkeypatch):
    monkeypatch.setattr(importing, "ROWS_PER_COMMIT", 50)  # IBM's 100 rows commit alone
    fifo = tmp_path / "ABC.csv"
    os.mkfifo(fifo)
    third = write_csv(tmp_path, "XYZ.csv", [HEADER, *GOOD_ROWS])

    def terminate_while_the_fifo_is_read():
        # Opening the write end waits for the command to open the FIFO; it then waits to read.
        with open(fifo, "w"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)

    before = signal.getsignal(signal.SIGTERM)
    killer = threading.Thread(target=terminate_while_the_fifo_is_read)
    killer.start()
    out = StringIO()
    with pytest.raises(CommandError, match=r"Interrupted: 2 files not loaded .* run the same"):
        call_command(
            "import_prices",
            "--from-file",
            str(OUR_IBM),
            str(fifo),
            str(third),
            stdout=out,
            stderr=StringIO(),
        )
    killer.join()

    assert out.getvalue().splitlines()[-1].startswith("Imported 1 of 3 files: 100 rows inserted")
    assert set(PriceHistory.objects.values_list("ticker", flat=True)) == {"IBM"}
    assert signal.getsignal(signal.SIGTERM) == before
