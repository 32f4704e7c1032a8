"""The fake Alpha Vantage server answers like the real one and counts what it is sent."""

import json
import subprocess
import sys
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest
import requests

from marketdata.testing import (
    BURST_LIMIT_BODY,
    DAILY_LIMIT_BODY,
    DAILY_LIMIT_ECHOING_KEY_BODY,
    FakeAlphaVantage,
)
from marketdata.trading_calendar import nyse

AS_OF = date(2023, 11, 10)


@pytest.fixture
def fake(tmp_path):
    with FakeAlphaVantage(tmp_path, as_of=AS_OF) as server:
        yield server


def ask(fake, function="TIME_SERIES_DAILY", symbol="IBM", apikey="test-key", **params):
    params = {"function": function, "apikey": apikey, **params}
    if symbol is not None:
        params["symbol" if function != "SYMBOL_SEARCH" else "keywords"] = symbol
    return requests.get(fake.url, params=params, timeout=5)


def test_it_serves_a_realistic_compact_daily_series_for_any_ticker(fake):
    answer = ask(fake, symbol="ZZTOP")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert body["Meta Data"]["2. Symbol"] == "ZZTOP"
    assert body["Meta Data"]["3. Last Refreshed"] == "2023-11-10"
    assert body["Meta Data"]["4. Output Size"] == "Compact"
    bars = body["Time Series (Daily)"]
    assert len(bars) == 100
    days = [date.fromisoformat(d) for d in bars]
    assert days == sorted(days, reverse=True)  # newest first, like the real service
    sessions = {s.date() for s in nyse().sessions_in_range("2023-01-01", "2023-11-10")}
    assert set(days) <= sessions  # no weekends, no holidays (2023-07-04 is inside the range)
    for bar in bars.values():
        o, h, low, c = (Decimal(bar[k]) for k in ("1. open", "2. high", "3. low", "4. close"))
        assert all(len(bar[k].split(".")[1]) == 4 for k in ("1. open", "4. close"))
        assert low <= min(o, c) <= max(o, c) <= h
        assert int(bar["5. volume"]) > 0


def test_generated_series_depend_only_on_the_ticker_and_the_date(fake, tmp_path):
    with FakeAlphaVantage(tmp_path, as_of=AS_OF) as other:
        assert ask(other, symbol="ZZTOP").json() == ask(fake, symbol="ZZTOP").json()
    assert ask(fake, symbol="ZZTOP").json() != ask(fake, symbol="ZZBOTTOM").json()
    assert fake.default_daily("ZZTOP") == ask(fake, symbol="ZZTOP").json()


def test_a_global_quote_matches_the_generated_series(fake):
    quote = ask(fake, "GLOBAL_QUOTE", "ZZTOP").json()["Global Quote"]
    last = fake.default_daily("ZZTOP")["Time Series (Daily)"]["2023-11-10"]
    assert quote["05. price"] == last["4. close"]
    assert quote["07. latest trading day"] == "2023-11-10"
    assert quote["10. change percent"].endswith("%")


def test_it_serves_saved_bodies_from_the_fixtures_directory(fake, tmp_path):
    saved = {"Meta Data": {"2. Symbol": "IBM"}, "Time Series (Daily)": {"2023-11-10": {}}}
    (tmp_path / "time_series_daily_IBM_compact_2023-11-10.json").write_text(json.dumps(saved))
    (tmp_path / "time_series_daily_IBM_trimmed_2020-05-08.json").write_text("{}")
    (tmp_path / "time_series_daily_IBM_compact_2026-05-15.csv").write_text("timestamp,open\n")
    assert ask(fake, symbol="IBM").json() == saved
    csv = ask(fake, symbol="IBM", datatype="csv")
    assert csv.text == "timestamp,open\n"
    assert csv.headers["Content-Type"] == "application/x-download"


def test_a_compact_request_gets_the_newest_100_rows_of_a_saved_full_series(fake, tmp_path):
    days = [(AS_OF - timedelta(days=n)).isoformat() for n in range(150)]
    rows = {day: {"4. close": "1.0000"} for day in reversed(days)}  # oldest first, on purpose
    meta = {"2. Symbol": "AAPL", "4. Output Size": "Full size"}
    full = {"Meta Data": meta, "Time Series (Daily)": rows}
    (tmp_path / "time_series_daily_AAPL_full_2023-11-10.json").write_text(json.dumps(full))
    compact = ask(fake, symbol="AAPL").json()
    assert compact["Meta Data"]["4. Output Size"] == "Compact"
    served = list(compact["Time Series (Daily)"])
    assert served == days[:100]  # the newest 100, newest first
    assert ask(fake, symbol="AAPL", outputsize="full").json() == full


def test_the_fixtures_default_to_the_copies_inside_the_project():
    fake = FakeAlphaVantage()
    try:
        assert fake.fixtures_dir.parts[-4:] == ("marketdata", "tests", "fixtures", "alphavantage")
    finally:
        fake.stop()


def test_a_route_overrides_the_body_status_delay_and_content_type(fake):
    fake.route("TIME_SERIES_DAILY", "IBM", "<html>Application Error</html>", status=503,
               delay=0.3, content_type="text/html")  # fmt: skip
    started = time.monotonic()
    answer = ask(fake, symbol="ibm")
    assert time.monotonic() - started >= 0.3
    assert answer.status_code == 503
    assert answer.headers["Content-Type"] == "text/html"
    assert answer.text == "<html>Application Error</html>"
    fake.route("GLOBAL_QUOTE", "*", {"Global Quote": {}})
    assert ask(fake, "GLOBAL_QUOTE", "MSFT").json() == {"Global Quote": {}}


def test_an_unknown_ticker_gets_the_real_answers(fake):
    fake.unknown("NOPE")
    assert ask(fake, symbol="NOPE").json() == {
        "Error Message": "Invalid API call. Please retry or visit the documentation "
        "(https://www.alphavantage.co/documentation/) for TIME_SERIES_DAILY."
    }
    assert ask(fake, "GLOBAL_QUOTE", "NOPE").json() == {"Global Quote": {}}
    assert ask(fake, "SYMBOL_SEARCH", "nothing like it").json() == {"bestMatches": []}


def test_a_request_without_a_key_is_refused_like_the_real_service(fake):
    assert "apikey is invalid or missing" in ask(fake, apikey="").json()["Error Message"]


def test_it_records_every_request_in_order(fake):
    ask(fake, symbol="IBM", apikey="k1")
    ask(fake, "SYMBOL_SEARCH", "tesco", apikey="k2")
    ask(fake, symbol="AAPL", apikey="k1")
    assert fake.requests == [
        ("TIME_SERIES_DAILY", "IBM", "k1"),
        ("SYMBOL_SEARCH", "tesco", "k2"),
        ("TIME_SERIES_DAILY", "AAPL", "k1"),
    ]
    assert fake.count() == 3
    assert fake.count("TIME_SERIES_DAILY") == 2
    assert fake.count("time_series_daily", "aapl") == 1
    assert fake.times == sorted(fake.times)
    fake.reset()
    assert fake.requests == [] and fake.count() == 0


def test_it_answers_the_rate_limit_body_after_n_calls(fake):
    fake.throttle_after(2)
    answers = [ask(fake).json() for _ in range(3)]
    assert "Time Series (Daily)" in answers[1]
    assert answers[2] == DAILY_LIMIT_BODY
    fake.throttle_after(0, body=DAILY_LIMIT_ECHOING_KEY_BODY)
    assert "detected your API key as secret-123 " in ask(fake, apikey="secret-123").text


def test_in_limits_mode_it_refuses_and_counts_a_burst(fake):
    fake.limits(min_interval=0.5, per_day=None)
    assert "Time Series (Daily)" in ask(fake).json()
    assert ask(fake).json() == BURST_LIMIT_BODY
    assert fake.violations == 1
    assert fake.violation_log[0].kind == "second" and fake.violation_log[0].index == 1
    time.sleep(0.55)
    assert "Time Series (Daily)" in ask(fake).json()
    assert fake.violations == 1


def test_in_limits_mode_it_refuses_and_counts_calls_past_the_day(fake):
    fake.limits(min_interval=0, per_day=2)
    answers = [ask(fake).json() for _ in range(3)]
    assert answers[2] == DAILY_LIMIT_BODY
    assert [v.kind for v in fake.violation_log] == ["day"]


def test_in_limits_mode_it_counts_calls_past_the_minute(fake):
    fake.limits(min_interval=0, per_minute=2, per_day=None)
    started = time.time()
    answers = [ask(fake).json() for _ in range(3)]
    if int(started // 60) == int(time.time() // 60):  # all three in one clock minute
        assert "Note" in answers[2]
        assert [v.kind for v in fake.violation_log] == ["minute"]


def test_it_runs_as_a_separate_process_for_bench_scripts(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "marketdata.testing.fake_alpha_vantage", "--port", "0",
         "--fixtures", str(tmp_path), "--as-of", "2023-11-10", "--limits", "--per-day", "1"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/query")
        params = {"function": "TIME_SERIES_DAILY", "symbol": "IBM", "apikey": "k"}
        body = requests.get(url, params=params, timeout=5).json()
        assert body["Meta Data"]["3. Last Refreshed"] == "2023-11-10"
        time.sleep(1.05)
        assert requests.get(url, params=params, timeout=5).json() == DAILY_LIMIT_BODY
        stats = requests.get(url.replace("/query", "/_fake/stats"), timeout=5).json()
        assert len(stats["requests"]) == 2
        assert [v[0] for v in stats["violations"]] == ["day"]
        requests.post(url.replace("/query", "/_fake/reset"), timeout=5)
        stats = requests.get(url.replace("/query", "/_fake/stats"), timeout=5).json()
        assert stats == {"requests": [], "violations": []}
    finally:
        process.terminate()
        process.wait(timeout=5)
