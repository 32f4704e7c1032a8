"""The Alpha Vantage adapter against real saved answers, synthetic error bodies, real local sockets
and vcrpy cassettes. No test touches the network.

Fixtures: ``fixtures/alphavantage/`` (provenance in its README.md; ``synthetic_*`` are built from
quoted texts). Cassettes: ``cassettes/``, recorded from a local http.server serving those fixtures:

    .venv/bin/python -m marketdata.tests.test_alpha_vantage record
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests
import urllib3
import vcr
from requests.adapters import HTTPAdapter

from marketdata import alpha_vantage
from marketdata.alpha_vantage import (
    AlphaVantageClient,
    DailyBar,
    DailySeries,
    Quote,
    TransientError,
    scrub,
)
from marketdata.port import (
    InvalidTicker,
    MarketDataUnavailable,
    ProviderMisconfigured,
    RateLimited,
    SymbolMatch,
    TickerNotFound,
)

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures" / "alphavantage"
CASSETTES = HERE / "cassettes"
BASE_URL = "https://www.alphavantage.co/query"
TEST_KEY = "TESTKEY1234567890"  # the key the synthetic E7b body echoes
RECORDING_KEY = "PTRECORDKEY9Z8Y7X6W5"  # the key the cassettes were recorded with
MOCK_KEY = "MOCK_API_KEY"
NOW = datetime(2025, 3, 10, 23, 30, tzinfo=UTC)

JSON = "application/json"
HTML = "text/html; charset=utf-8"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- serving bodies through the real requests stack, minus the socket ---------------------------
class FixtureAdapter(HTTPAdapter):
    """Answers every request with the next scripted (status, content type, body); keeps the
    prepared requests. Only the socket is replaced: requests builds the Response as usual."""

    def __init__(self, answers: list[tuple[int, str, bytes]]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        self.sent.append(request)
        status, content_type, body = (
            self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        )
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(body),
            headers={"Content-Type": content_type, "Content-Length": str(len(body))},
            status=status,
            reason="OK" if status == 200 else "Error",
            preload_content=False,
            request_method=request.method,
            request_url=request.url,
        )
        return self.build_response(request, raw)

    def query(self, index: int = 0) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.sent[index].url).query)


def serve(
    *answers: str | tuple[int, str, bytes], **client_kwargs
) -> tuple[AlphaVantageClient, FixtureAdapter]:
    """A client whose session answers with the named fixtures (HTTP 200, JSON) in turn."""
    scripted = [(200, JSON, fixture_bytes(a)) if isinstance(a, str) else a for a in answers]
    adapter = FixtureAdapter(scripted)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    client_kwargs.setdefault("api_key", TEST_KEY)
    client = AlphaVantageClient(base_url=BASE_URL, timeout=5.0, session=session, **client_kwargs)
    return client, adapter


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr(alpha_vantage, "_now", lambda: NOW)


def bar(day: str, o: str, h: str, lo: str, c: str, v: int) -> DailyBar:
    return DailyBar(date.fromisoformat(day), Decimal(o), Decimal(h), Decimal(lo), Decimal(c), v)


# === 1. Contract: real saved answers ==============================================================
def test_daily_ibm_compact_real_answer():
    client, adapter = serve("time_series_daily_IBM_compact_2023-11-10.json")

    series = client.daily("IBM")

    assert isinstance(series, DailySeries)
    assert series.ticker == "IBM"
    assert len(series.bars) == 100
    assert series.bars[0] == bar(
        "2023-06-22", "131.6800", "132.9600", "130.6800", "131.1700", 6013021
    )
    assert series.bars[-1] == bar(
        "2023-11-10", "147.4400", "149.1700", "146.8500", "149.0200", 3179541
    )
    assert [b.day for b in series.bars] == sorted(b.day for b in series.bars)
    assert len({b.day for b in series.bars}) == 100
    # "Last Refreshed: 2023-11-10" -> that session's 16:00 New York close (EST, UTC-5)
    assert series.last_refreshed == datetime(2023, 11, 10, 21, 0, tzinfo=UTC)
    assert all(b.close.as_tuple().exponent == -4 for b in series.bars)
    assert adapter.query() == {
        "function": ["TIME_SERIES_DAILY"],
        "symbol": ["IBM"],
        "outputsize": ["compact"],
        "apikey": [TEST_KEY],
    }
    assert adapter.sent[0].headers["User-Agent"] == "PaperTrade/0.1"


@pytest.mark.parametrize(
    ("fixture", "ticker", "first", "last", "refreshed"),
    [
        (
            "time_series_daily_MSFT_compact_2018-08-16.json",
            "MSFT",
            bar("2018-03-27", "94.9400", "95.1390", "88.5100", "89.4700", 53704562),
            bar("2018-08-16", "108.3000", "108.8600", "107.3000", "107.6400", 20687122),
            datetime(2018, 8, 16, 20, 0, tzinfo=UTC),  # EDT, UTC-4
        ),
        (
            "time_series_daily_TSLA_compact_2021-04-23.json",
            "TSLA",
            bar("2020-11-30", "602.2100", "607.8000", "554.5100", "567.6000", 63003052),
            # the daily bar's volume, not the quote's 27879033 (API-FACTS pitfall 8)
            bar("2021-04-23", "719.8000", "737.3600", "715.4600", "729.4000", 27703323),
            datetime(2021, 4, 23, 20, 0, tzinfo=UTC),
        ),
    ],
)
def test_daily_compact_real_answers(fixture, ticker, first, last, refreshed):
    client, _ = serve(fixture)

    series = client.daily(ticker.lower())

    assert series.ticker == ticker
    assert len(series.bars) == 100
    assert (series.bars[0], series.bars[-1]) == (first, last)
    assert series.last_refreshed == refreshed


def test_daily_full_only_on_premium_with_raw_split_prices():
    client, adapter = serve("time_series_daily_AAPL_full_2023-11-10.json", premium=True)

    series = client.daily("AAPL")

    assert adapter.query()["outputsize"] == ["full"]
    assert len(series.bars) == 6047
    assert series.bars[0] == bar("1999-11-01", "80.0000", "80.6900", "77.3700", "77.6200", 2487300)
    assert series.bars[-1] == bar(
        "2023-11-10", "183.9700", "186.5650", "183.5300", "186.4000", 66177922
    )
    by_day = {b.day: b for b in series.bars}
    # TIME_SERIES_DAILY is as-traded: the 2020 4:1 split shows as a drop.
    assert by_day[date(2020, 8, 28)].close == Decimal("499.2300")
    assert by_day[date(2020, 8, 31)].close == Decimal("129.0400")


def test_daily_last_refreshed_with_a_time_is_eastern_and_bars_are_oldest_first():
    client, _ = serve("time_series_daily_IBM_trimmed_2020-05-08.json")

    series = client.daily("IBM")

    assert series.last_refreshed == datetime(2020, 5, 8, 18, 7, 3, tzinfo=UTC)  # 14:07:03 EDT
    assert series.bars == (
        bar("2020-05-07", "122.9800", "123.2600", "120.8500", "121.2300", 4412047),
        bar("2020-05-08", "122.6700", "122.8000", "121.0600", "121.7900", 2538547),
    )


def test_daily_adjusted_layout_parses_raw_close_and_volume():
    # A different (premium) function; if its body ever came back it reads as raw OHLCV.
    client, _ = serve("time_series_daily_adjusted_IBM_trimmed_2020-05-08.json")

    series = client.daily("IBM")

    assert series.bars[-1] == bar(
        "2020-05-08", "122.6700", "122.8000", "121.0600", "121.8050", 2542577
    )
    assert series.bars[0].volume == 4412047


def test_an_intraday_body_is_not_a_daily_series():
    client, _ = serve("time_series_intraday_MSFT_1min_compact_2017-12-18.json")

    with pytest.raises(MarketDataUnavailable, match="Time Series \\(Daily\\)"):
        client.daily("MSFT")


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "global_quote_MSFT_2018-10-05.json",
            Quote("MSFT", Decimal("112.1300"), Decimal("112.6300"), Decimal("113.1700"),
                  Decimal("110.6400"), 29062853, date(2018, 10, 5), Decimal("112.7900"),
                  Decimal("-0.6600"), Decimal("-0.5852")),
        ),
        (
            "global_quote_IBM_2020-05-08.json",
            Quote("IBM", Decimal("121.7400"), Decimal("122.6700"), Decimal("122.8000"),
                  Decimal("121.0600"), 2528814, date(2020, 5, 8), Decimal("121.2300"),
                  Decimal("0.5100"), Decimal("0.4207")),
        ),
        (
            "global_quote_IBM_2022-06-09.json",
            Quote("IBM", Decimal("137.9600"), Decimal("140.1500"), Decimal("141.0400"),
                  Decimal("137.9300"), 3587161, date(2022, 6, 9), Decimal("140.8300"),
                  Decimal("-2.8700"), Decimal("-2.0379")),
        ),
        (
            "global_quote_TSLA_2021-04-23.json",
            Quote("TSLA", Decimal("729.4000"), Decimal("719.8000"), Decimal("737.3600"),
                  Decimal("715.4600"), 27879033, date(2021, 4, 23), Decimal("719.6900"),
                  Decimal("9.7100"), Decimal("1.3492")),
        ),
    ],
)  # fmt: skip
def test_global_quote_real_answers(fixture, expected):
    client, adapter = serve(fixture)

    quote = client.quote(expected.ticker)

    assert quote == expected
    assert str(quote.change_percent) == str(expected.change_percent)  # exact digits, "%" gone
    assert adapter.query() == {
        "function": ["GLOBAL_QUOTE"],
        "symbol": [expected.ticker],
        "apikey": [TEST_KEY],
    }


def test_symbol_search_ba_real_answer():
    client, adapter = serve("symbol_search_BA_2018.json")

    matches = client.search("BA")

    assert [m.ticker for m in matches] == [
        "BA", "BABA", "BSVN", "6190.HKG", "BAC", "BIDU", "BHC", "ABX", "BKS", "BLDP",
    ]  # fmt: skip
    assert matches[0] == SymbolMatch("BA", "The Boeing Company", "United States", "USD")
    assert matches[3] == SymbolMatch("6190.HKG", "Bank of Jiujiang Co. Ltd.", "Hong Kong", "HKD")
    assert adapter.query() == {
        "function": ["SYMBOL_SEARCH"],
        "keywords": ["BA"],
        "apikey": [TEST_KEY],
    }


def test_symbol_search_tesco_keeps_gbx():
    client, _ = serve("symbol_search_tesco_2025.json")

    matches = client.search("tesco")

    assert matches == [
        SymbolMatch("TSCO.LON", "Tesco PLC", "United Kingdom", "GBX"),
        SymbolMatch("TSCDF", "Tesco plc", "United States", "USD"),
        SymbolMatch("TSCDY", "Tesco plc", "United States", "USD"),
        SymbolMatch("TCO2.FRK", "TESCO PLC ADR/1 LS-05", "Frankfurt", "EUR"),
        SymbolMatch("TCO0.FRK", "TESCO PLC LS-0633333", "Frankfurt", "EUR"),
    ]


def test_symbol_search_tesla_keeps_the_apis_order():
    client, _ = serve("symbol_search_tesla_2021.json")

    matches = client.search("tesla")

    assert [m.ticker for m in matches] == ["TL0.DEX", "TL0.FRK", "TSLA34.SAO", "TSLA", "TXLZF"]
    assert matches[2].region == "Brazil/Sao Paolo"
    assert matches[3] == SymbolMatch("TSLA", "Tesla Inc", "United States", "USD")


def test_invalid_api_call_is_ticker_not_found():
    client, _ = serve("error_invalid_api_call_CMO_2018.json")

    with pytest.raises(TickerNotFound) as daily:
        client.daily("nosuch")
    with pytest.raises(TickerNotFound) as quote:
        client.quote("NOSUCH")

    assert daily.value.ticker == quote.value.ticker == "NOSUCH"


def test_invalid_api_call_on_search_is_unavailable_not_a_ticker_error():
    client, _ = serve("error_invalid_api_call_CMO_2018.json")

    with pytest.raises(MarketDataUnavailable) as caught:
        client.search("???")

    assert not isinstance(caught.value, TickerNotFound | ProviderMisconfigured | RateLimited)


@pytest.mark.parametrize(
    "fixture",
    [
        "note_rate_limit_5min_500day_2019.json",  # real, Note (2018-11 -> 2023)
        "information_higher_call_volume_2018.json",  # real, Information (2018)
        "synthetic_note_rate_limit_5min_100day.json",  # E5b
    ],
)
def test_per_minute_throttle_notices(fixture):
    client, _ = serve(fixture)

    with pytest.raises(RateLimited) as caught:
        client.daily("IBM")

    assert caught.value.scope == "minute"
    assert caught.value.retry_at == NOW + timedelta(seconds=60)


@pytest.mark.parametrize("call", ["daily", "quote", "search"])
def test_premium_artificial_sample_is_misconfiguration_not_data(call):
    client, _ = serve("realtime_bulk_quotes_premium_artificial_sample.json")

    with pytest.raises(ProviderMisconfigured, match="premium"):
        getattr(client, call)("MSFT")


# === 1b. Synthetic error bodies (quoted texts, API-FACTS §3) ======================================
def test_empty_global_quote_is_ticker_not_found():  # E2
    client, _ = serve("synthetic_global_quote_empty.json")

    with pytest.raises(TickerNotFound) as caught:
        client.quote("xyzq")

    assert caught.value.ticker == "XYZQ"


def test_missing_api_key_answer_tells_the_operator_what_to_set():  # E4
    client, _ = serve("synthetic_error_apikey_missing.json")

    with pytest.raises(ProviderMisconfigured, match="set ALPHA_VANTAGE_API_KEY"):
        client.daily("IBM")


def test_unknown_function_is_misconfiguration():  # E3
    client, _ = serve("synthetic_error_unknown_function.json")

    with pytest.raises(ProviderMisconfigured):
        client.daily("IBM")


def test_daily_cap_closes_until_next_utc_midnight():  # E7
    client, _ = serve("synthetic_information_daily_limit_25.json")

    with pytest.raises(RateLimited) as caught:
        client.quote("IBM")

    assert caught.value.scope == "day"
    assert caught.value.retry_at == datetime(2025, 3, 11, 0, 0, tzinfo=UTC)


def test_daily_cap_under_note_key_too():  # E7 as some apps saw it
    text = json.loads(fixture_bytes("synthetic_information_daily_limit_25.json"))["Information"]
    client, _ = serve((200, JSON, json.dumps({"Note": text}).encode()))

    with pytest.raises(RateLimited) as caught:
        client.daily("IBM")

    assert caught.value.scope == "day"


def test_key_echoing_daily_cap_leaks_the_key_nowhere(caplog):  # E7b
    caplog.set_level(logging.DEBUG)
    client, _ = serve("synthetic_information_daily_limit_key_echo.json")
    assert TEST_KEY.encode() in fixture_bytes("synthetic_information_daily_limit_key_echo.json")

    with pytest.raises(RateLimited) as caught:
        client.daily("IBM")

    error = caught.value
    assert error.scope == "day"
    assert error.retry_at == datetime(2025, 3, 11, tzinfo=UTC)
    assert "detected your API key as ***" in str(error)
    seen = [
        str(error),
        repr(error),
        repr(error.args),
        "".join(traceback.format_exception(error)),
        repr(client),
    ]
    seen += [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records]
    assert caplog.records, "the call logs one line"
    for text in seen:
        assert TEST_KEY not in text


def test_burst_limit_is_per_second():  # E8 (also mentions "per day")
    client, _ = serve("synthetic_information_burst_1_per_second.json")

    with pytest.raises(RateLimited) as caught:
        client.quote("IBM")

    assert caught.value.scope == "second"
    assert caught.value.retry_at == NOW + timedelta(seconds=2)


# Throttle before premium: every rate-limit wording is a rate limit, whatever its tail (E8's
# varies, and may end with E9's "…unlock all premium endpoints").
PREMIUM_TAIL = (
    " You may subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to "
    "instantly unlock all premium endpoints"
)


@pytest.mark.parametrize(
    ("fixture", "scope"),
    [
        ("synthetic_information_burst_premium_tail.json", "second"),
        ("synthetic_information_burst_1_per_second.json", "second"),
        ("note_rate_limit_5min_500day_2019.json", "minute"),
        ("synthetic_note_rate_limit_5min_100day.json", "minute"),
        ("information_higher_call_volume_2018.json", "minute"),
        ("synthetic_information_daily_limit_25.json", "day"),
        ("synthetic_information_daily_limit_key_echo.json", "day"),
    ],
)
@pytest.mark.parametrize("tail", ["", PREMIUM_TAIL])
def test_a_throttle_with_a_premium_tail_is_still_a_throttle(fixture, scope, tail):
    body = json.loads(fixture_bytes(fixture))
    key = next(k for k in ("Information", "Note") if k in body)
    body[key] += tail
    client, _ = serve((200, JSON, json.dumps(body).encode()))

    with pytest.raises(RateLimited) as caught:
        client.daily("IBM")

    assert caught.value.scope == scope
    assert not isinstance(caught.value, ProviderMisconfigured)


def test_premium_endpoint_is_misconfiguration():  # E9
    client, _ = serve("synthetic_information_premium_endpoint.json")

    with pytest.raises(ProviderMisconfigured, match="premium"):
        client.daily("IBM")


def test_outputsize_full_refused_tells_the_operator_to_turn_premium_off():  # E10
    client, adapter = serve("synthetic_information_outputsize_full_premium.json", premium=True)

    with pytest.raises(ProviderMisconfigured) as caught:
        client.daily("IBM")

    assert adapter.query()["outputsize"] == ["full"]
    assert "set market_data.premium = false in config.toml" in str(caught.value)
    assert not isinstance(caught.value, RateLimited)


def test_demo_key_notice_is_misconfiguration():  # E11
    client, _ = serve("synthetic_information_demo_key.json")

    with pytest.raises(ProviderMisconfigured, match="ALPHA_VANTAGE_API_KEY"):
        client.quote("AAPL")


def test_unknown_notice_without_data_is_unavailable():
    client, _ = serve("synthetic_information_unknown_notice.json")

    with pytest.raises(MarketDataUnavailable) as caught:
        client.daily("IBM")

    assert type(caught.value) is MarketDataUnavailable


def test_unknown_notice_next_to_good_data_keeps_the_data():
    body = json.loads(fixture_bytes("time_series_daily_IBM_trimmed_2020-05-08.json"))
    body["Information"] = "Thank you for using Alpha Vantage! A new endpoint is available."
    client, _ = serve((200, JSON, json.dumps(body).encode()))

    assert len(client.daily("IBM").bars) == 2


@pytest.mark.parametrize(
    ("call", "fixture"),
    [
        ("daily", "synthetic_empty_object.json"),  # E13
        ("quote", "synthetic_empty_object.json"),
        ("search", "synthetic_empty_object.json"),
        ("daily", "synthetic_daily_truncated.json"),
        ("daily", "synthetic_wrong_shape_list.json"),
        ("quote", "synthetic_wrong_shape_list.json"),
        ("search", "synthetic_wrong_shape_list.json"),
        ("daily", "synthetic_daily_row_missing_close.json"),
        ("daily", "synthetic_daily_non_numeric_close.json"),
        ("daily", "synthetic_daily_negative_low.json"),
        ("daily", "synthetic_daily_empty_series.json"),
        ("quote", "synthetic_global_quote_negative_price.json"),
        ("quote", "synthetic_global_quote_missing_day.json"),
        ("search", "synthetic_symbol_search_row_missing_name.json"),
        ("quote", "time_series_daily_IBM_compact_2023-11-10.json"),  # right data, wrong function
        ("search", "global_quote_IBM_2020-05-08.json"),
    ],
)
def test_garbled_or_wrong_shape_answers_are_unavailable(call, fixture):
    client, adapter = serve(fixture)

    with pytest.raises(MarketDataUnavailable) as caught:
        getattr(client, call)("IBM")

    assert type(caught.value) is MarketDataUnavailable
    assert len(adapter.sent) == 1  # a 200 answer is never retried


def test_html_outage_page_with_200_is_unavailable():
    client, _ = serve((200, HTML, fixture_bytes("synthetic_outage_503.html")))

    with pytest.raises(MarketDataUnavailable, match="not JSON"):
        client.quote("IBM")


def test_html_503_outage_is_transient_after_one_request():
    """Whether to try again is the upstream part's call (each attempt through the quota)."""
    client, adapter = serve((503, HTML, fixture_bytes("synthetic_outage_503.html")))

    with pytest.raises(TransientError, match="HTTP 503"):
        client.daily("IBM")

    assert len(adapter.sent) == 1


def test_no_matches_is_an_empty_list():
    client, _ = serve("synthetic_symbol_search_no_matches.json")

    assert client.search("zzzzzz") == []


def test_search_leaves_out_symbols_that_cannot_be_tickers_here():
    rows = json.loads(fixture_bytes("symbol_search_tesco_2025.json"))
    rows["bestMatches"][0]["1. symbol"] = "RELIANCE.BSE"  # 12 characters
    client, _ = serve((200, JSON, json.dumps(rows).encode()))

    assert [m.ticker for m in client.search("tesco")] == ["TSCDF", "TSCDY", "TCO2.FRK", "TCO0.FRK"]


def test_blank_search_makes_no_call():
    client, adapter = serve("symbol_search_tesco_2025.json")

    assert client.search("   ") == []
    assert adapter.sent == []


def test_ticker_is_normalized_before_the_call_and_invalid_ones_are_not_sent():
    client, adapter = serve("time_series_daily_IBM_trimmed_2020-05-08.json")

    assert client.daily("  ibm ").ticker == "IBM"
    assert adapter.query()["symbol"] == ["IBM"]
    with pytest.raises(InvalidTicker):
        client.quote("IBM&apikey=x")
    assert len(adapter.sent) == 1


def test_no_key_configured_is_misconfiguration_without_a_call():
    client, adapter = serve("global_quote_IBM_2020-05-08.json", api_key="")

    with pytest.raises(ProviderMisconfigured, match="ALPHA_VANTAGE_API_KEY"):
        client.quote("IBM")
    assert adapter.sent == []


def test_http_429_is_upstream_rate_limit_and_404_is_misconfiguration():
    client, adapter = serve((429, JSON, b"{}"))
    with pytest.raises(RateLimited) as caught:
        client.quote("IBM")
    assert caught.value.scope == "upstream"
    assert len(adapter.sent) == 1

    client, adapter = serve((404, HTML, b"<h1>Not Found</h1>"))
    with pytest.raises(ProviderMisconfigured, match="ALPHA_VANTAGE_BASE_URL"):
        client.quote("IBM")
    assert len(adapter.sent) == 1


def test_one_log_line_per_upstream_call(caplog):
    caplog.set_level(logging.DEBUG, logger="marketdata.alpha_vantage")
    client, _ = serve("global_quote_IBM_2020-05-08.json")

    client.quote("IBM")

    records = [r for r in caplog.records if r.name == "marketdata.alpha_vantage"]
    assert len(records) == 1
    line = records[0].getMessage()
    for part in ("function=GLOBAL_QUOTE", "symbol=IBM", "outcome=ok", "elapsed_ms="):
        assert part in line


def test_scrub():
    assert scrub("GET /query?function=X&apikey=SECRET1&symbol=IBM", "SECRET1") == (
        "GET /query?function=X&apikey=***&symbol=IBM"
    )
    assert scrub("key SECRET1 and apikey=OTHER", "SECRET1") == "key *** and apikey=***"
    assert scrub("a+b/c? in url: a%2Bb%2Fc%3F", "a+b/c?") == "*** in url: ***"
    assert scrub("nothing to hide", "") == "nothing to hide"


# === 1c. Real sockets: a local server, a closed port ==============================================
class LocalServer:
    """A tiny http.server on 127.0.0.1 answering with ``respond(query, n) -> (status, type, body)``
    (``None`` = hold the connection open until released). Records every query it got."""

    def __init__(self, respond: Callable[[dict[str, str], int], tuple | None]) -> None:
        self.respond = respond
        self.queries: list[dict[str, str]] = []
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                query = dict(parse_qsl(urlsplit(self.path).query))
                owner.queries.append(query)
                answer = owner.respond(query, len(owner.queries))
                if answer is None:
                    owner.release.wait(10)
                    return
                status, content_type, body = answer
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # http.server would print the request line (the key)
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/query"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def local_server() -> Iterator[Callable[..., LocalServer]]:
    servers: list[LocalServer] = []

    def start(respond) -> LocalServer:
        server = LocalServer(respond).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


def json_answer(name: str) -> tuple[int, str, bytes]:
    return 200, JSON, fixture_bytes(name)


def test_timeout_on_a_real_socket_is_transient_after_one_request(local_server, caplog):
    caplog.set_level(logging.DEBUG)
    server = local_server(lambda query, n: None)
    client = AlphaVantageClient(api_key=TEST_KEY, base_url=server.base_url, timeout=0.2)

    with pytest.raises(TransientError, match="timed out") as caught:
        client.daily("IBM")

    assert len(server.queries) == 1
    assert server.queries[0]["apikey"] == TEST_KEY
    assert TEST_KEY not in "".join(traceback.format_exception(caught.value))
    assert all(TEST_KEY not in r.getMessage() for r in caplog.records)


def test_connection_refused_is_transient_and_scrubbed(caplog):
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = AlphaVantageClient(
        api_key=TEST_KEY, base_url=f"http://127.0.0.1:{port}/query", timeout=1.0
    )

    with pytest.raises(TransientError, match="connection failed") as caught:
        client.quote("IBM")

    text = "".join(traceback.format_exception(caught.value))
    assert TEST_KEY not in text and "apikey=" not in text
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert all(TEST_KEY not in r.getMessage() for r in caplog.records)


# === 3. Retries ===================================================================================
def test_each_request_logs_one_scrubbed_line(local_server, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 logs each request line: it must come out scrubbed
    html = fixture_bytes("synthetic_outage_503.html")
    server = local_server(
        lambda query, n: (
            (503, HTML, html) if n == 1 else json_answer("global_quote_IBM_2020-05-08.json")
        )
    )
    client = AlphaVantageClient(api_key=TEST_KEY, base_url=server.base_url, timeout=2.0)

    with pytest.raises(TransientError):
        client.quote("IBM")
    quote = client.quote("IBM")

    assert quote.price == Decimal("121.7400")
    assert len(server.queries) == 2
    ours = [r for r in caplog.records if r.name == "marketdata.alpha_vantage"]
    assert [
        ("outcome=unavailable" in r.getMessage(), "outcome=ok" in r.getMessage()) for r in ours
    ] == [
        (True, False),
        (False, True),
    ]
    assert any(
        "apikey=***" in r.getMessage() for r in caplog.records if r.name.startswith("urllib3")
    )
    assert all(TEST_KEY not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("fixture", "error"),
    [
        ("synthetic_information_burst_1_per_second.json", RateLimited),
        ("synthetic_information_daily_limit_key_echo.json", RateLimited),
        ("note_rate_limit_5min_500day_2019.json", RateLimited),
        ("synthetic_information_demo_key.json", ProviderMisconfigured),
        ("synthetic_error_apikey_missing.json", ProviderMisconfigured),
        ("error_invalid_api_call_CMO_2018.json", TickerNotFound),
    ],
)
def test_rate_limits_and_misconfiguration_are_not_transient(local_server, fixture, error):
    server = local_server(lambda query, n: json_answer(fixture))
    client = AlphaVantageClient(api_key=TEST_KEY, base_url=server.base_url, timeout=2.0)

    with pytest.raises(error) as caught:
        client.daily("IBM")

    assert not isinstance(caught.value, TransientError)
    assert len(server.queries) == 1


# === 2. vcrpy cassettes (request side) ============================================================
def _scrub_recorded_response(response: dict) -> dict:
    body = response["body"]["string"]
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    scrubbed = scrub(text, RECORDING_KEY).encode("utf-8")
    response["body"]["string"] = scrubbed
    for name in list(response["headers"]):
        if name.lower() == "content-length":
            response["headers"][name] = [str(len(scrubbed))]
    return response


def cassette_vcr(record_mode: str = "none") -> vcr.VCR:
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode=record_mode,
        match_on=["method", "path", "query"],
        filter_query_parameters=[("apikey", MOCK_KEY)],
        before_record_response=_scrub_recorded_response,
    )


# cassette -> (client method, argument, fixture the local server served when recording)
CASSETTE_PLAN = {
    "av_time_series_daily_IBM_compact.yaml": (
        "daily", "IBM", "time_series_daily_IBM_compact_2023-11-10.json"
    ),
    "av_global_quote_MSFT.yaml": ("quote", "MSFT", "global_quote_MSFT_2018-10-05.json"),
    "av_symbol_search_tesco.yaml": ("search", "tesco", "symbol_search_tesco_2025.json"),
    "av_daily_limit_key_echo.yaml": (
        "daily", "AAPL", "synthetic_information_daily_limit_key_echo.json"
    ),
}  # fmt: skip


def replaying_client() -> tuple[AlphaVantageClient, list[str]]:
    """A client on the production URL (a cassette answers; record_mode="none" means no network),
    plus the URLs it really sent (the cassette only keeps the filtered ones)."""
    session = requests.Session()
    sent: list[str] = []
    session.hooks["response"].append(lambda r, *a, **k: sent.append(r.request.url))
    return AlphaVantageClient(
        api_key=TEST_KEY, base_url=BASE_URL, timeout=5.0, session=session
    ), sent


def test_daily_cassette_replays_and_the_request_is_well_formed():
    client, sent = replaying_client()
    with cassette_vcr().use_cassette("av_time_series_daily_IBM_compact.yaml") as cassette:
        series = client.daily("IBM")

    assert cassette.play_count == 1 and cassette.all_played
    assert len(series.bars) == 100
    assert series.bars[-1].close == Decimal("149.0200")
    recorded = dict(cassette.requests[0].query)
    assert recorded == {
        "function": "TIME_SERIES_DAILY",
        "symbol": "IBM",
        "outputsize": "compact",
        "apikey": MOCK_KEY,
    }
    assert cassette.requests[0].headers["User-Agent"] == "PaperTrade/0.1"
    assert parse_qs(urlsplit(sent[0]).query)["apikey"] == [TEST_KEY]  # the live request had it


def test_quote_and_search_cassettes_replay():
    client, _ = replaying_client()
    with cassette_vcr().use_cassette("av_global_quote_MSFT.yaml") as cassette:
        quote = client.quote("MSFT")
    assert cassette.all_played
    assert dict(cassette.requests[0].query) == {
        "function": "GLOBAL_QUOTE", "symbol": "MSFT", "apikey": MOCK_KEY,
    }  # fmt: skip
    assert (quote.change, quote.change_percent) == (Decimal("-0.6600"), Decimal("-0.5852"))

    with cassette_vcr().use_cassette("av_symbol_search_tesco.yaml") as cassette:
        matches = client.search("tesco")
    assert cassette.all_played
    assert dict(cassette.requests[0].query)["keywords"] == "tesco"
    assert matches[0] == SymbolMatch("TSCO.LON", "Tesco PLC", "United Kingdom", "GBX")


def test_key_echo_cassette_replays_as_daily_limit():
    client, _ = replaying_client()
    with (
        cassette_vcr().use_cassette("av_daily_limit_key_echo.yaml") as cassette,
        pytest.raises(RateLimited) as caught,
    ):
        client.daily("AAPL")

    assert cassette.all_played
    assert caught.value.scope == "day"
    assert "detected your API key as ***" in str(caught.value)


def test_a_request_missing_from_a_cassette_fails_instead_of_reaching_the_network():
    client, _ = replaying_client()
    with (
        cassette_vcr().use_cassette("av_global_quote_MSFT.yaml"),
        pytest.raises(vcr.errors.CannotOverwriteExistingCassetteException),
    ):
        client.quote("IBM")


def test_no_cassette_holds_a_key():
    cassettes = sorted(CASSETTES.glob("*.yaml"))
    assert {c.name for c in cassettes} >= set(CASSETTE_PLAN)
    for cassette in cassettes:
        text = cassette.read_text()
        assert RECORDING_KEY not in text, cassette.name
        assert TEST_KEY not in text, cassette.name
        values = re.findall(r"apikey=([^&\s'\"]*)", text, flags=re.IGNORECASE)
        assert values, cassette.name
        assert set(values) == {MOCK_KEY}, cassette.name


def record_cassettes() -> None:
    """Re-record the cassettes from a local server serving the fixtures (no network). The
    server echoes the received key into the E7b body, as Alpha Vantage does."""

    def respond(query: dict[str, str], n: int) -> tuple[int, str, bytes]:
        for _method, argument, fixture in CASSETTE_PLAN.values():
            if argument in (query.get("symbol"), query.get("keywords")):
                body = fixture_bytes(fixture).replace(
                    TEST_KEY.encode(), query.get("apikey", "").encode()
                )
                return 200, JSON, body
        return 404, JSON, b"{}"

    CASSETTES.mkdir(exist_ok=True)
    with LocalServer(respond) as server:
        client = AlphaVantageClient(api_key=RECORDING_KEY, base_url=server.base_url, timeout=5.0)
        for name, (method, argument, _fixture) in CASSETTE_PLAN.items():
            (CASSETTES / name).unlink(missing_ok=True)
            with cassette_vcr("once").use_cassette(name), contextlib.suppress(RateLimited):
                getattr(client, method)(argument)
            print("recorded", name)


if __name__ == "__main__":
    if sys.argv[1:] != ["record"]:
        sys.exit(__doc__)
    record_cassettes()
