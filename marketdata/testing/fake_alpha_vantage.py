"""A small local fake of Alpha Vantage's ``/query`` endpoint, for tests and benchmarks.

It answers like the real service (API-FACTS.md): HTTP 200 with JSON for successes *and* errors,
numbers as 4-decimal strings, the real error and rate-limit wordings. It records every request,
and in "limits" mode it enforces the free key's limits itself and counts every request that broke
one: that is how a test proves that no process pushed past the quota.

In a test::

    with FakeAlphaVantage() as fake:
        settings.ALPHA_VANTAGE_BASE_URL = fake.url
        ...
        assert fake.count("TIME_SERIES_DAILY", "IBM") == 1

From a shell or a bench script (foreground, Ctrl-C stops it)::

    python -m marketdata.testing.fake_alpha_vantage --port 8765 --limits

which also answers ``GET /_fake/stats`` (JSON: requests, violations) and ``POST /_fake/reset``.

Imports nothing from Django.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

DEFAULT_FIXTURES_DIR = (
    Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "alphavantage"
)

# --- Real bodies (API-FACTS.md §3; "{apikey}" is replaced by the request's key) --------------
DOCS = "https://www.alphavantage.co/documentation/"
PREMIUM = "https://www.alphavantage.co/premium/"
# E1: unknown symbol or bad parameters on TIME_SERIES_* (the function name ends the sentence).
INVALID_API_CALL = (
    "Invalid API call. Please retry or visit the documentation ({docs}) for {function}."
)
# E4: missing or empty apikey.
MISSING_KEY_BODY = {
    "Error Message": "the parameter apikey is invalid or missing. Please claim your free API key "
    "on (https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
}
# E8: more than about one request a second on a free key.
BURST_LIMIT_BODY = {
    "Information": "Thank you for using Alpha Vantage! Please consider spreading out your free "
    "API requests more sparingly (1 request per second). You may subscribe to any of the "
    f"premium plans at {PREMIUM} to lift the free key rate limit (25 requests per day) and "
    "instantly unlock all premium endpoints"
}
# E7: the daily cap.
DAILY_LIMIT_BODY = {
    "Information": "Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests "
    f"per day. Please subscribe to any of the premium plans at {PREMIUM} to instantly remove all "
    "daily rate limits."
}
# E7b: the daily cap, newer wording: it repeats the caller's API key.
DAILY_LIMIT_ECHOING_KEY_BODY = {
    "Information": "We have detected your API key as {apikey} and our standard API rate limit is "
    f"25 requests per day. Please subscribe to any of the premium plans at {PREMIUM} to "
    "instantly remove all daily rate limits."
}
# E5: the per-minute throttle of 2018-2023 (a "Note").
MINUTE_LIMIT_BODY = {
    "Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per "
    f"minute and 500 calls per day. Please visit {PREMIUM} if you would like to target a higher "
    "API call frequency."
}

# What a load balancer answers when the service behind it is down (HTTP 503, not JSON).
OUTAGE_PAGE = (
    "<html><head><title>503 Service Unavailable</title></head><body><h1>503 Service "
    "Unavailable</h1><p>No server is available to handle this request.</p></body></html>"
)

JSON = "application/json"
CSV = "application/x-download"
HTML = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Arrival:
    function: str
    symbol: str  # symbol, or keywords for SYMBOL_SEARCH
    apikey: str
    monotonic: float  # time.monotonic() when the request was read
    wall: float  # time.time() then: clock minutes and UTC days are counted on it


@dataclass(frozen=True)
class Violation:
    kind: str  # "second", "minute" or "day"
    index: int  # the request's position in .requests
    detail: str


@dataclass(frozen=True)
class _Route:
    body: dict | str
    status: int
    delay: float
    content_type: str


@dataclass(frozen=True)
class _Limits:
    min_interval: float
    per_minute: int | None
    per_day: int | None
    tolerance: float


def _nyse_sessions(end: date, count: int) -> list[date]:
    """The last ``count`` NYSE sessions on or before ``end``, oldest first."""
    import pandas as pd

    from marketdata.trading_calendar import nyse

    cal = nyse()
    sessions = cal.sessions_window(cal.date_to_session(pd.Timestamp(end), "previous"), -count)
    return [s.date() for s in sessions]


def _latest_session() -> date:
    """The latest NYSE session whose close has passed (what a real key would serve now)."""
    from marketdata.port import session_date
    from marketdata.trading_calendar import latest_due_close

    return session_date(latest_due_close(datetime.now(UTC), timedelta(0)))


def daily_series(symbol: str, end: date, *, bars: int = 100) -> dict:
    """A compact TIME_SERIES_DAILY body for ``symbol``: ``bars`` NYSE sessions ending at ``end``.

    Deterministic: the same symbol and end date give the same body, in any process.
    """
    seed = int.from_bytes(hashlib.sha256(symbol.upper().encode()).digest()[:8], "big")
    rng = random.Random(seed)
    close = rng.uniform(20, 400)
    rows = {}
    for day in _nyse_sessions(end, bars):
        open_ = close * (1 + rng.gauss(0, 0.004))
        close = max(open_ * (1 + rng.gauss(0, 0.015)), 1.0)
        high = max(open_, close) * (1 + abs(rng.gauss(0, 0.006)))
        low = min(open_, close) * (1 - abs(rng.gauss(0, 0.006)))
        rows[day.isoformat()] = {
            "1. open": f"{open_:.4f}",
            "2. high": f"{high:.4f}",
            "3. low": f"{low:.4f}",
            "4. close": f"{close:.4f}",
            "5. volume": str(rng.randint(200_000, 40_000_000)),
        }
    newest_first = dict(reversed(rows.items()))
    return {
        "Meta Data": {
            "1. Information": "Daily Prices (open, high, low, close) and Volumes",
            "2. Symbol": symbol,
            "3. Last Refreshed": next(iter(newest_first)),
            "4. Output Size": "Compact",
            "5. Time Zone": "US/Eastern",
        },
        "Time Series (Daily)": newest_first,
    }


def _compact(full: dict, bars: int = 100) -> dict:
    """A saved full-size series cut to what a compact request gets: the newest ``bars`` rows."""
    series_key = next(k for k in full if k.startswith("Time Series"))
    rows = sorted(full[series_key].items(), reverse=True)[:bars]
    meta = {
        k: ("Compact" if k.endswith("Output Size") else v) for k, v in full["Meta Data"].items()
    }
    return {"Meta Data": meta, series_key: dict(rows)}


def global_quote_from(daily: dict) -> dict:
    """A GLOBAL_QUOTE body built from a daily body's last two bars."""
    (day, bar), (_, previous) = list(daily["Time Series (Daily)"].items())[:2]
    price, prev = float(bar["4. close"]), float(previous["4. close"])
    return {
        "Global Quote": {
            "01. symbol": daily["Meta Data"]["2. Symbol"],
            "02. open": bar["1. open"],
            "03. high": bar["2. high"],
            "04. low": bar["3. low"],
            "05. price": bar["4. close"],
            "06. volume": bar["5. volume"],
            "07. latest trading day": day,
            "08. previous close": previous["4. close"],
            "09. change": f"{price - prev:.4f}",
            "10. change percent": f"{(price - prev) / prev * 100:.4f}%",
        }
    }


class FakeAlphaVantage:
    """A fake Alpha Vantage on 127.0.0.1 (a free port unless ``port`` is given).

    What a request gets, first match wins:

    0. outage mode (:meth:`outage`): an HTML 503 page (the request still counts for the limits);
    1. limits mode (:meth:`limits`): a request that breaks a limit gets the real rate-limit body;
    2. :meth:`throttle_after`: past ``n`` requests, the rate-limit body;
    3. no ``apikey``: the real "apikey is invalid or missing" error;
    4. a :meth:`route` for (function, symbol), then for (function, "*");
    5. :meth:`unknown` symbols: ``{"Global Quote": {}}`` for GLOBAL_QUOTE (what the real service
       answers), the real "Invalid API call" error for the rest;
    6. a fixture file ``<function>_<SYMBOL>_*.json`` (``.csv`` for ``datatype=csv``) in
       ``fixtures_dir``, preferring the requested ``outputsize`` and the newest date in the name
       (a compact request served from a ``_full_`` file gets its newest 100 rows);
    7. generated data: TIME_SERIES_DAILY from :meth:`default_daily`, GLOBAL_QUOTE from its last
       two bars, SYMBOL_SEARCH an empty ``bestMatches``, SPLITS and DIVIDENDS none (``data: []``);
       any other function, "Invalid API call".

    In slow mode (:meth:`slow`) every answer is sent only after a delay.

    ``as_of`` is the last session of generated series (default: the latest session closed now).
    """

    def __init__(
        self,
        fixtures_dir: str | Path | None = None,
        *,
        as_of: date | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.fixtures_dir = Path(fixtures_dir) if fixtures_dir else DEFAULT_FIXTURES_DIR
        self.as_of = as_of
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []
        self._violations: list[Violation] = []
        self._routes: dict[tuple[str, str], _Route] = {}
        self._unknown: set[str] = set()
        self._throttle: tuple[int, dict | str] | None = None
        self._limits: _Limits | None = None
        self._outage: int | None = 0  # requests still to answer with OUTAGE_PAGE; None: all
        self._outage_status = 503
        self._slow = 0.0
        self._minute_counts: Counter[int] = Counter()
        self._day_counts: Counter[date] = Counter()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- life cycle
    def start(self) -> FakeAlphaVantage:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},  # stop() returns within 50 ms, not 0.5 s
                name="fake-alpha-vantage",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeAlphaVantage:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/query"

    # --- what it saw
    @property
    def requests(self) -> list[tuple[str, str, str]]:
        """(function, symbol or keywords, apikey) of every request, in arrival order."""
        with self._lock:
            return [(a.function, a.symbol, a.apikey) for a in self._arrivals]

    @property
    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    @property
    def times(self) -> list[float]:
        """``time.monotonic()`` of every request's arrival, in order."""
        with self._lock:
            return [a.monotonic for a in self._arrivals]

    def count(self, function: str | None = None, symbol: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for a in self._arrivals
                if (function is None or a.function == function.upper())
                and (symbol is None or a.symbol.upper() == symbol.upper())
            )

    @property
    def violations(self) -> int:
        """How many requests broke a limit (limits mode only)."""
        with self._lock:
            return len(self._violations)

    @property
    def violation_log(self) -> list[Violation]:
        with self._lock:
            return list(self._violations)

    def reset(self) -> None:
        """Forget the requests, violations and limit counters (routes and modes stay)."""
        with self._lock:
            self._arrivals.clear()
            self._violations.clear()
            self._minute_counts.clear()
            self._day_counts.clear()

    # --- what it answers
    def route(
        self,
        function: str,
        symbol: str,
        body: dict | str,
        status: int = 200,
        delay: float = 0.0,
        content_type: str = JSON,
    ) -> None:
        """Answer ``function`` for ``symbol`` ("*": any symbol) with ``body`` after ``delay`` s."""
        with self._lock:
            self._routes[(function.upper(), symbol.upper())] = _Route(
                body, status, delay, content_type
            )

    def outage(self, count: int | None = None, status: int = 503) -> None:
        """Answer the next ``count`` requests (every one when None) with an HTML outage page
        and ``status``; ``outage(0)`` ends it."""
        with self._lock:
            self._outage = count
            self._outage_status = status

    def slow(self, delay: float) -> None:
        """Send every answer only after ``delay`` seconds (0 ends slow mode): past a client's
        timeout, that is a provider that answers too late."""
        with self._lock:
            self._slow = max(delay, 0.0)

    def unknown(self, *symbols: str) -> None:
        """Answer these symbols as the real service answers a ticker it does not know."""
        with self._lock:
            self._unknown.update(s.upper() for s in symbols)

    def throttle_after(self, n: int, body: dict | str | None = None) -> None:
        """Answer ``body`` (default: the real daily-limit message) to every request after ``n``."""
        with self._lock:
            self._throttle = (n, DAILY_LIMIT_BODY if body is None else body)

    def limits(
        self,
        *,
        min_interval: float = 1.0,
        per_minute: int | None = None,
        per_day: int | None = 25,
        tolerance: float = 0.0,
    ) -> None:
        """Enforce limits like the free key does, counting each request that breaks one.

        Every request counts, refused or not (the real service does not say whether refused
        calls count; counting them is the strict reading). A request breaks "second" when it
        arrives less than ``min_interval - tolerance`` after the one before; "minute" when it is
        one too many in its UTC clock minute; "day" in its UTC day. A request arriving within
        ``tolerance`` after a minute boundary may count in the minute before when that one has
        room: the sender's clock read it there, and the latency moved it over the line.
        """
        with self._lock:
            self._limits = _Limits(min_interval, per_minute, per_day, tolerance)

    def default_daily(self, symbol: str, end: date | None = None) -> dict:
        """The generated compact TIME_SERIES_DAILY body this server gives ``symbol``."""
        return daily_series(symbol, end or self.as_of or _latest_session())

    # --- the server side
    def _record(self, function: str, symbol: str, apikey: str) -> tuple[int, Violation | None]:
        now_mono, now_wall = time.monotonic(), time.time()
        with self._lock:
            index = len(self._arrivals)
            previous = self._arrivals[-1] if self._arrivals else None
            self._arrivals.append(Arrival(function, symbol, apikey, now_mono, now_wall))
            limits = self._limits
            if limits is None:
                return index, None
            broken: list[Violation] = []
            if previous is not None:
                gap = now_mono - previous.monotonic
                if gap < limits.min_interval - limits.tolerance:
                    broken.append(Violation("second", index, f"{gap:.3f} s after the last call"))
            minute = int(now_wall // 60)
            earlier = int((now_wall - limits.tolerance) // 60)
            if (
                earlier != minute
                and limits.per_minute is not None
                and self._minute_counts[earlier] < limits.per_minute
            ):
                minute = earlier
            self._minute_counts[minute] += 1
            if limits.per_minute is not None and self._minute_counts[minute] > limits.per_minute:
                broken.append(
                    Violation("minute", index, f"call {self._minute_counts[minute]} in a minute")
                )
            day = datetime.fromtimestamp(now_wall, UTC).date()
            self._day_counts[day] += 1
            if limits.per_day is not None and self._day_counts[day] > limits.per_day:
                broken.append(Violation("day", index, f"call {self._day_counts[day]} on {day}"))
            self._violations.extend(broken)
            # The day's message wins (it is the one that lasts), then the burst one.
            for kind in ("day", "second", "minute"):
                for v in broken:
                    if v.kind == kind:
                        return index, v
            return index, None

    def _answer(self, query: dict[str, str]) -> tuple[_Route, str]:
        function = query.get("function", "").upper()
        symbol = query.get("symbol") or query.get("keywords") or ""
        apikey = query.get("apikey", "")
        index, violation = self._record(function, symbol, apikey)
        with self._lock:
            if self._outage is None or self._outage > 0:
                if self._outage is not None:
                    self._outage -= 1
                return _Route(OUTAGE_PAGE, self._outage_status, self._slow, HTML), apikey
            throttle = self._throttle
            route = self._routes.get((function, symbol.upper())) or self._routes.get(
                (function, "*")
            )
            unknown = symbol.upper() in self._unknown
        if violation is not None:
            body = {"day": DAILY_LIMIT_BODY, "second": BURST_LIMIT_BODY}.get(
                violation.kind, MINUTE_LIMIT_BODY
            )
            return _Route(body, 200, 0.0, JSON), apikey
        if throttle is not None and index >= throttle[0]:
            return _Route(throttle[1], 200, 0.0, JSON), apikey
        if not apikey:
            return _Route(MISSING_KEY_BODY, 200, 0.0, JSON), apikey
        if route is not None:
            return route, apikey
        if unknown:
            if function == "GLOBAL_QUOTE":
                return _Route({"Global Quote": {}}, 200, 0.0, JSON), apikey
            return _Route(self._invalid(function), 200, 0.0, JSON), apikey
        fixture = self._fixture(function, symbol, query)
        if fixture is not None:
            return fixture, apikey
        if function == "TIME_SERIES_DAILY" and symbol:
            return _Route(self.default_daily(symbol), 200, 0.0, JSON), apikey
        if function == "GLOBAL_QUOTE" and symbol:
            body = global_quote_from(self.default_daily(symbol))
            return _Route(body, 200, 0.0, JSON), apikey
        if function == "SYMBOL_SEARCH":
            return _Route({"bestMatches": []}, 200, 0.0, JSON), apikey
        if function in ("SPLITS", "DIVIDENDS") and symbol:
            return _Route({"symbol": symbol, "data": []}, 200, 0.0, JSON), apikey
        return _Route(self._invalid(function), 200, 0.0, JSON), apikey

    @staticmethod
    def _invalid(function: str) -> dict:
        return {"Error Message": INVALID_API_CALL.format(docs=DOCS, function=function)}

    def _fixture(self, function: str, symbol: str, query: dict[str, str]) -> _Route | None:
        if not function or not symbol or not self.fixtures_dir.is_dir():
            return None
        csv = query.get("datatype", "json").lower() == "csv"
        prefix = f"{function.lower()}_{symbol.lower()}_"
        candidates = [
            p
            for p in self.fixtures_dir.glob(f"*.{'csv' if csv else 'json'}")
            if p.name.lower().startswith(prefix)
        ]
        if not candidates:
            return None
        size = query.get("outputsize", "compact").lower()
        # The requested output size first, then the newest date (names end with the data date).
        best = max(candidates, key=lambda p: (size in p.name.lower(), p.stem.rsplit("_", 1)[-1]))
        text = best.read_text(encoding="utf-8")
        if not csv and size == "compact" and "_full_" in best.name.lower():
            return _Route(_compact(json.loads(text)), 200, 0.0, JSON)
        return _Route(text, 200, 0.0, CSV if csv else JSON)

    def _stats(self) -> dict:
        with self._lock:
            return {
                "requests": [[a.function, a.symbol, a.apikey, a.wall] for a in self._arrivals],
                "violations": [[v.kind, v.index, v.detail] for v in self._violations],
            }


def _handler_for(fake: FakeAlphaVantage) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "FakeAlphaVantage/1"

        def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
            pass  # quiet: tests and benchmarks read .requests instead

        def _send(self, status: int, text: str, content_type: str) -> None:
            data = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/_fake/stats":
                self._send(200, json.dumps(fake._stats()), JSON)
                return
            if parts.path != "/query":
                self._send(404, "Not Found", "text/plain")
                return
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            route, apikey = fake._answer(query)
            delay = max(route.delay, fake._slow)
            if delay:
                time.sleep(delay)
            text = route.body if isinstance(route.body, str) else json.dumps(route.body, indent=4)
            # A client that gave up waiting (a timeout: what slow mode is for) hangs up first.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._send(route.status, text.replace("{apikey}", apikey), route.content_type)

        def do_POST(self) -> None:
            if urlsplit(self.path).path == "/_fake/reset":
                fake.reset()
                self._send(200, "{}", JSON)
            else:
                self._send(404, "Not Found", "text/plain")

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--fixtures", default=None, help="a directory of saved bodies")
    parser.add_argument("--as-of", type=date.fromisoformat, default=None)
    parser.add_argument("--limits", action="store_true", help="enforce the limits below")
    parser.add_argument("--min-interval", type=float, default=1.0)
    parser.add_argument("--per-minute", type=int, default=None)
    parser.add_argument("--per-day", type=int, default=25)
    parser.add_argument("--tolerance", type=float, default=0.0)
    parser.add_argument("--outage", action="store_true", help="answer every request with a 503")
    parser.add_argument("--slow", type=float, default=0.0, help="delay every answer (seconds)")
    args = parser.parse_args(argv)
    fake = FakeAlphaVantage(args.fixtures, as_of=args.as_of, port=args.port)
    if args.outage:
        fake.outage()
    fake.slow(args.slow)
    if args.limits:
        fake.limits(
            min_interval=args.min_interval,
            per_minute=args.per_minute,
            per_day=args.per_day,
            tolerance=args.tolerance,
        )
    print(fake.url, flush=True)
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()
        print(f"{len(fake.requests)} requests, {fake.violations} violations", flush=True)


if __name__ == "__main__":
    main()
