"""Contract tests of the adapter's ``SPLITS`` and ``DIVIDENDS`` functions.

Bodies are served as in ``test_alpha_vantage.py`` (its ``serve``: the real ``requests`` stack with
only the socket replaced), so every test stops at the HTTP boundary and none touches the network.

Fixtures (``fixtures/alphavantage/``):

- ``dividends_IBM_2024-06.json`` is REAL: a byte-identical copy of
  ``/work/shared/fixtures/alphavantage/real/dividends_IBM_2024-06.json`` (provenance in that
  folder's SOURCES.md: conor-kellett/FinDocker @ 0d68cff, re-indented by its author).
- ``splits_IBM_synthetic.json`` is SYNTHETIC: no real SPLITS answer was saved, so it is built from
  the documented shape quoted in SOURCES.md ("Corporate actions"), values as quoted there.

Error bodies are the existing fixtures the daily tests use: each must be classified for SPLITS and
DIVIDENDS exactly as it is for TIME_SERIES_DAILY.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from marketdata import alpha_vantage
from marketdata.alpha_vantage import FetchedAction, TransientError
from marketdata.port import (
    ActionKind,
    InvalidTicker,
    MarketDataUnavailable,
    ProviderMisconfigured,
    RateLimited,
    TickerNotFound,
)
from marketdata.tests.test_alpha_vantage import (
    HTML,
    JSON,
    NOW,
    TEST_KEY,
    fixture_bytes,
    serve,
)

DIVIDENDS_FIXTURE = "dividends_IBM_2024-06.json"
SPLITS_FIXTURE = "splits_IBM_synthetic.json"  # SYNTHETIC: built from the documented shape
CALLS = ["splits", "dividends"]
FUNCTION = {"splits": "SPLITS", "dividends": "DIVIDENDS"}


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr(alpha_vantage, "_now", lambda: NOW)


def rows_of(name: str) -> list[dict]:
    """The ``data`` rows of a fixture, as the API sent them (newest first)."""
    return json.loads(fixture_bytes(name))["data"]


def body(rows: list[dict], symbol: str = "IBM") -> tuple[int, str, bytes]:
    return 200, JSON, json.dumps({"symbol": symbol, "data": rows}).encode()


def optional_day(text: str) -> date | None:
    return None if text == "None" else date.fromisoformat(text)


# === Real DIVIDENDS answer =======================================================================
def test_dividends_real_answer_parses_every_row():
    client, adapter = serve(DIVIDENDS_FIXTURE)

    dividends = client.dividends("ibm")

    raw = rows_of(DIVIDENDS_FIXTURE)
    assert len(raw) == len(dividends) == 102
    assert all(isinstance(d, FetchedAction) for d in dividends)
    assert {d.kind for d in dividends} == {ActionKind.DIVIDEND}
    # Oldest first (the API answers newest first), like a daily series.
    assert [d.date for d in dividends] == sorted(d.date for d in dividends)
    expected = sorted(
        (
            FetchedAction(
                kind=ActionKind.DIVIDEND,
                date=date.fromisoformat(r["ex_dividend_date"]),
                value=Decimal(r["amount"]),
                record_date=optional_day(r["record_date"]),
                pay_date=optional_day(r["payment_date"]),
                declaration_date=optional_day(r["declaration_date"]),
            )
            for r in raw
        ),
        key=lambda a: a.date,
    )
    assert dividends == expected
    assert adapter.query() == {
        "function": ["DIVIDENDS"],
        "symbol": ["IBM"],
        "apikey": [TEST_KEY],
    }


def test_dividends_newest_row_keeps_its_dates_and_exact_amount():
    client, _ = serve(DIVIDENDS_FIXTURE)

    newest = client.dividends("IBM")[-1]

    assert newest.date == date(2024, 5, 9)
    assert newest.value == Decimal("1.67")
    assert str(newest.value) == "1.67"  # the digits as written: Decimal from the string
    assert newest.pay_date == date(2024, 6, 10)
    assert newest.record_date == date(2024, 5, 10)
    assert newest.declaration_date == date(2024, 4, 30)


def test_dividends_none_dates_become_none():
    raw = next(r for r in rows_of(DIVIDENDS_FIXTURE) if r["payment_date"] == "None")
    client, _ = serve(DIVIDENDS_FIXTURE)

    by_date = {d.date: d for d in client.dividends("IBM")}

    row = by_date[date.fromisoformat(raw["ex_dividend_date"])]
    assert (row.record_date, row.pay_date, row.declaration_date) == (None, None, None)
    assert row.value == Decimal(raw["amount"])


@pytest.mark.parametrize("unknown", [None, "", "null", "NONE"])
def test_dividends_other_unknown_optional_dates_become_none(unknown):
    row = dict(rows_of(DIVIDENDS_FIXTURE)[0], payment_date=unknown)
    del row["record_date"]  # absent altogether
    client, _ = serve(body([row]))

    (dividend,) = client.dividends("IBM")

    assert (dividend.pay_date, dividend.record_date) == (None, None)
    assert dividend.declaration_date == date.fromisoformat(row["declaration_date"])


# === Synthetic SPLITS answer =====================================================================
def test_splits_synthetic_answer_parses():
    """SYNTHETIC fixture (no real SPLITS answer is saved): the documented shape."""
    client, adapter = serve(SPLITS_FIXTURE)

    splits = client.splits("IBM")

    raw = rows_of(SPLITS_FIXTURE)
    assert splits == sorted(
        (
            FetchedAction(
                kind=ActionKind.SPLIT,
                date=date.fromisoformat(r["effective_date"]),
                value=Decimal(r["split_factor"]),
            )
            for r in raw
        ),
        key=lambda a: a.date,
    )
    kyndryl = splits[-1]
    assert (kyndryl.date, kyndryl.value) == (date(2021, 11, 4), Decimal("1.0460"))
    assert str(kyndryl.value) == "1.0460"
    assert (kyndryl.record_date, kyndryl.pay_date, kyndryl.declaration_date) == (None, None, None)
    assert adapter.query() == {
        "function": ["SPLITS"],
        "symbol": ["IBM"],
        "apikey": [TEST_KEY],
    }


def test_a_factor_with_more_than_four_places_is_not_rounded():
    client, _ = serve(body([{"effective_date": "2020-01-02", "split_factor": "0.333333"}]))

    (split,) = client.splits("XYZ")

    assert split.value == Decimal("0.333333")


@pytest.mark.parametrize("call", CALLS)
def test_empty_data_is_no_actions(call):
    client, adapter = serve(body([]))

    assert getattr(client, call)("IBM") == []
    assert len(adapter.sent) == 1


@pytest.mark.parametrize("call", CALLS)
def test_a_different_symbol_in_the_answer_is_not_checked(call):
    """The other functions never compare the answer's symbol with the ticker asked."""
    fixture = SPLITS_FIXTURE if call == "splits" else DIVIDENDS_FIXTURE
    client, _ = serve(body(rows_of(fixture), symbol="OTHER"))

    assert len(getattr(client, call)("IBM")) == len(rows_of(fixture))


# === Unreadable rows: the whole answer is rejected, as for a daily series =========================
def _split_row(**changes) -> dict:
    return {**rows_of(SPLITS_FIXTURE)[0], **changes}


def _dividend_row(**changes) -> dict:
    return {**rows_of(DIVIDENDS_FIXTURE)[0], **changes}


def _without(row: dict, key: str) -> dict:
    return {k: v for k, v in row.items() if k != key}


@pytest.mark.parametrize(
    ("call", "bad_row"),
    [
        ("splits", _split_row(effective_date="None")),
        ("splits", _without(_split_row(), "effective_date")),
        ("splits", _split_row(effective_date="2021-13-04")),
        ("splits", _split_row(effective_date="04/11/2021")),
        ("splits", _split_row(split_factor="0.0000")),
        ("splits", _split_row(split_factor="-2.0000")),
        ("splits", _split_row(split_factor="NaN")),
        ("splits", _split_row(split_factor="Infinity")),
        ("splits", _split_row(split_factor="1e3")),
        ("splits", _split_row(split_factor=1.046)),  # a JSON float: never through float
        ("splits", _split_row(split_factor=True)),
        ("splits", _without(_split_row(), "split_factor")),
        ("splits", ["2021-11-04", "1.0460"]),
        ("dividends", _dividend_row(ex_dividend_date="None")),
        ("dividends", _without(_dividend_row(), "ex_dividend_date")),
        ("dividends", _dividend_row(ex_dividend_date="2024-02-30")),
        ("dividends", _dividend_row(amount="None")),
        ("dividends", _dividend_row(amount="0")),
        ("dividends", _dividend_row(amount="-1.67")),
        ("dividends", _dividend_row(amount="$1.67")),
        ("dividends", _without(_dividend_row(), "amount")),
        ("dividends", _dividend_row(payment_date="June 10")),  # known but garbled: not "unknown"
        ("dividends", _dividend_row(record_date=20240510)),
        ("dividends", "not a row"),
    ],
)
def test_one_unreadable_row_rejects_the_whole_answer(call, bad_row):
    good = rows_of(SPLITS_FIXTURE if call == "splits" else DIVIDENDS_FIXTURE)
    client, adapter = serve(body([*good, bad_row]))

    with pytest.raises(MarketDataUnavailable, match="unexpected answer") as caught:
        getattr(client, call)("IBM")

    assert type(caught.value) is MarketDataUnavailable
    assert len(adapter.sent) == 1


# === Error bodies: classified as for TIME_SERIES_DAILY ===========================================
@pytest.mark.parametrize("call", CALLS)
def test_invalid_api_call_is_ticker_not_found(call):
    client, _ = serve("error_invalid_api_call_CMO_2018.json")

    with pytest.raises(TickerNotFound) as caught:
        getattr(client, call)("nosuch")

    assert caught.value.ticker == "NOSUCH"


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    ("fixture", "scope", "retry_after"),
    [
        ("note_rate_limit_5min_500day_2019.json", "minute", timedelta(seconds=60)),
        ("information_higher_call_volume_2018.json", "minute", timedelta(seconds=60)),
        ("synthetic_note_rate_limit_5min_100day.json", "minute", timedelta(seconds=60)),
        ("synthetic_information_burst_1_per_second.json", "second", timedelta(seconds=2)),
        ("synthetic_information_burst_premium_tail.json", "second", timedelta(seconds=2)),
        ("synthetic_information_daily_limit_25.json", "day", None),
        ("synthetic_information_daily_limit_key_echo.json", "day", None),
    ],
)
def test_rate_limit_notices(call, fixture, scope, retry_after):
    client, adapter = serve(fixture)

    with pytest.raises(RateLimited) as caught:
        getattr(client, call)("IBM")

    assert caught.value.scope == scope
    next_midnight = datetime(2025, 3, 11, tzinfo=UTC)
    assert caught.value.retry_at == (NOW + retry_after if retry_after else next_midnight)
    assert not isinstance(caught.value, TransientError)
    assert len(adapter.sent) == 1


@pytest.mark.parametrize("call", CALLS)
def test_daily_cap_under_note_key_too(call):
    text = json.loads(fixture_bytes("synthetic_information_daily_limit_25.json"))["Information"]
    client, _ = serve((200, JSON, json.dumps({"Note": text}).encode()))

    with pytest.raises(RateLimited) as caught:
        getattr(client, call)("IBM")

    assert caught.value.scope == "day"


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    ("fixture", "says"),
    [
        ("synthetic_error_apikey_missing.json", "set ALPHA_VANTAGE_API_KEY"),  # E4
        ("synthetic_error_unknown_function.json", "ALPHA_VANTAGE_BASE_URL"),  # E3
        ("synthetic_information_demo_key.json", "ALPHA_VANTAGE_API_KEY"),  # E11
        ("synthetic_information_premium_endpoint.json", "premium"),  # E9
        ("synthetic_information_outputsize_full_premium.json", "premium"),  # E10
        ("realtime_bulk_quotes_premium_artificial_sample.json", "premium"),  # E12, fake `data`
    ],
)
def test_misconfiguration_notices(call, fixture, says):
    client, _ = serve(fixture)

    with pytest.raises(ProviderMisconfigured, match=says) as caught:
        getattr(client, call)("IBM")

    assert not isinstance(caught.value, RateLimited)


@pytest.mark.parametrize("call", CALLS)
def test_premium_endpoint_names_the_function(call):
    client, _ = serve("synthetic_information_premium_endpoint.json")

    with pytest.raises(ProviderMisconfigured) as caught:
        getattr(client, call)("IBM")

    assert f"{FUNCTION[call]} needs a premium Alpha Vantage plan" in str(caught.value)


@pytest.mark.parametrize("call", CALLS)
def test_unknown_notice_without_data_is_unavailable(call):
    client, _ = serve("synthetic_information_unknown_notice.json")

    with pytest.raises(MarketDataUnavailable) as caught:
        getattr(client, call)("IBM")

    assert type(caught.value) is MarketDataUnavailable


@pytest.mark.parametrize("call", CALLS)
def test_unknown_notice_next_to_good_data_keeps_the_data(call):
    fixture = SPLITS_FIXTURE if call == "splits" else DIVIDENDS_FIXTURE
    answer = json.loads(fixture_bytes(fixture))
    answer["Information"] = "Thank you for using Alpha Vantage! A new endpoint is available."
    client, _ = serve((200, JSON, json.dumps(answer).encode()))

    assert len(getattr(client, call)("IBM")) == len(answer["data"])


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    "fixture",
    [
        "synthetic_empty_object.json",  # E13
        "synthetic_daily_truncated.json",  # not JSON at all
        "synthetic_wrong_shape_list.json",
        "time_series_daily_IBM_trimmed_2020-05-08.json",  # right data, wrong function
        "global_quote_IBM_2020-05-08.json",
    ],
)
def test_garbled_or_wrong_shape_answers_are_unavailable(call, fixture):
    client, adapter = serve(fixture)

    with pytest.raises(MarketDataUnavailable) as caught:
        getattr(client, call)("IBM")

    assert type(caught.value) is MarketDataUnavailable
    assert len(adapter.sent) == 1  # a 200 answer is never retried


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("data", [None, {}, "none", {"effective_date": "2021-11-04"}])
def test_data_that_is_not_a_list_is_unavailable(call, data):
    client, _ = serve((200, JSON, json.dumps({"symbol": "IBM", "data": data}).encode()))

    with pytest.raises(MarketDataUnavailable, match="'data'") as caught:
        getattr(client, call)("IBM")

    assert type(caught.value) is MarketDataUnavailable


@pytest.mark.parametrize("call", CALLS)
def test_html_outage_page_with_200_is_unavailable(call):
    client, _ = serve((200, HTML, fixture_bytes("synthetic_outage_503.html")))

    with pytest.raises(MarketDataUnavailable, match="not JSON"):
        getattr(client, call)("IBM")


@pytest.mark.parametrize("call", CALLS)
def test_http_503_is_transient_after_one_request(call):
    client, adapter = serve((503, HTML, fixture_bytes("synthetic_outage_503.html")))

    with pytest.raises(TransientError, match="HTTP 503"):
        getattr(client, call)("IBM")

    assert len(adapter.sent) == 1


@pytest.mark.parametrize("call", CALLS)
def test_invalid_ticker_and_missing_key_make_no_call(call):
    client, adapter = serve(SPLITS_FIXTURE)
    with pytest.raises(InvalidTicker):
        getattr(client, call)("IBM&apikey=x")
    assert adapter.sent == []

    client, adapter = serve(SPLITS_FIXTURE, api_key="")
    with pytest.raises(ProviderMisconfigured, match="ALPHA_VANTAGE_API_KEY"):
        getattr(client, call)("IBM")
    assert adapter.sent == []


# === The key leaks nowhere ========================================================================
def _everything_said(error: Exception, client, caplog) -> list[str]:
    seen = [str(error), repr(error), repr(error.args), "".join(traceback.format_exception(error))]
    seen.append(repr(client))
    seen += [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records]
    return seen


@pytest.mark.parametrize("call", CALLS)
def test_key_echoing_daily_cap_leaks_the_key_nowhere(call, caplog):  # E7b
    caplog.set_level(logging.DEBUG)
    assert TEST_KEY.encode() in fixture_bytes("synthetic_information_daily_limit_key_echo.json")
    client, _ = serve("synthetic_information_daily_limit_key_echo.json")

    with pytest.raises(RateLimited) as caught:
        getattr(client, call)("IBM")

    assert "detected your API key as ***" in str(caught.value)
    assert caplog.records, "the call logs one line"
    for text in _everything_said(caught.value, client, caplog):
        assert TEST_KEY not in text


@pytest.mark.parametrize("call", CALLS)
def test_a_shape_error_quoting_the_key_is_scrubbed(call, caplog):
    caplog.set_level(logging.DEBUG)
    # A readable date, so the error is about the value and quotes it (the key, here).
    date_field = "effective_date" if call == "splits" else "ex_dividend_date"
    row = {date_field: "2021-11-04", "split_factor": TEST_KEY, "amount": TEST_KEY}
    client, _ = serve(body([row]))

    with pytest.raises(MarketDataUnavailable, match=r"is not a number: '\*\*\*'") as caught:
        getattr(client, call)("IBM")

    for text in _everything_said(caught.value, client, caplog):
        assert TEST_KEY not in text


@pytest.mark.parametrize("call", CALLS)
def test_one_log_line_per_call(call, caplog):
    caplog.set_level(logging.DEBUG, logger="marketdata.alpha_vantage")
    client, _ = serve(SPLITS_FIXTURE if call == "splits" else DIVIDENDS_FIXTURE)

    getattr(client, call)("IBM")

    records = [r for r in caplog.records if r.name == "marketdata.alpha_vantage"]
    assert len(records) == 1
    line = records[0].getMessage()
    for part in (f"function={FUNCTION[call]}", "symbol=IBM", "outcome=ok", "elapsed_ms="):
        assert part in line
