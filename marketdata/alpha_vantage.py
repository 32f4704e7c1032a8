"""The Alpha Vantage adapter: ``TIME_SERIES_DAILY``, ``GLOBAL_QUOTE``, ``SYMBOL_SEARCH``,
``SPLITS`` and ``DIVIDENDS`` over HTTP.

Every answer Alpha Vantage gives is HTTP 200, errors included, so success is judged by the shape of
the body and errors by key + substring of the known wordings (the tuples below; catalogue in
``shared/fixtures/alphavantage/API-FACTS.md`` §3). Values come back as frozen dataclasses with
``Decimal`` prices (4 places; a split factor or dividend amount keeps the digits it was sent
with) and aware UTC datetimes, never raw JSON.

Errors are the port's (``marketdata.port``): ``TickerNotFound`` (the provider does not know the
symbol), ``RateLimited`` (with ``scope`` and ``retry_at``), ``ProviderMisconfigured`` (key, demo
key, premium-only request, wrong base URL: an operator must act) and ``MarketDataUnavailable`` for
everything garbled; timeouts, connection errors and HTTP 5xx raise its subclass
:class:`TransientError`. Each method makes exactly one HTTP request: whether to try again is the
caller's decision (``marketdata.upstream`` retries a transient error, each attempt through the
quota).

The API key travels in the query string (``apikey=``) and the daily-limit notice repeats it, so
every exception message and log line goes through :func:`scrub`. One log line per upstream call
(logger ``marketdata.alpha_vantage``). Nothing here caches.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

import requests

from marketdata.bars import DailyBar
from marketdata.port import (
    NEW_YORK,
    ActionKind,
    InvalidTicker,
    MarketDataError,
    MarketDataUnavailable,
    ProviderMisconfigured,
    RateLimited,
    SymbolMatch,
    TickerNotFound,
    close_of,
    normalize_ticker,
)

# --- Known upstream wordings (lower-case substrings; API-FACTS.md §3, §6 pitfall 2) -------------
# Matched by substring, never by equality: the texts drift every year or two.
INVALID_CALL_WORDINGS = ("invalid api call",)  # E1: unknown symbol / bad parameter
BAD_KEY_WORDINGS = ("apikey is invalid or missing",)  # E4
UNKNOWN_FUNCTION_WORDINGS = ("does not exist",)  # E3: "This API function (X) does not exist."
DEMO_KEY_WORDINGS = ("**demo** api key", "demo api key", "demo purposes")  # E11
PREMIUM_WORDINGS = ("premium endpoint", "premium feature")  # E9, E10, E12
ARTIFICIAL_SAMPLE_WORDINGS = ("artificial",)  # E12: fake sample data under `message`
OUTPUTSIZE_FULL_WORDINGS = ("outputsize=full",)  # E10
# Rate limits are checked before premium notices: E8's tail varies and may end "…unlock all
# premium endpoints". E8 burst is checked first (it also says "per day"); E5 says "5 calls per
# minute and 500 calls per day", so the minute wordings come before the day ones.
BURST_LIMIT_WORDINGS = ("1 request per second", "sparingly")  # E8
MINUTE_LIMIT_WORDINGS = ("calls per minute", "call frequency", "higher api call volume")  # E5, E6
DAILY_LIMIT_WORDINGS = ("per day", "detected your api key", "rate limit is 25")  # E7, E7b
NOTICE_KEYS = ("Information", "Note")  # the same notices moved from one key to the other over time

DAILY_SERIES_KEY = "Time Series (Daily)"
QUOTE_KEY = "Global Quote"
SEARCH_KEY = "bestMatches"
ACTIONS_KEY = "data"  # SPLITS and DIVIDENDS: {"symbol": ..., "data": [row, ...]}
# DIVIDENDS writes an unknown date as the literal string "None" (older rows); "null" (as
# LISTING_STATUS writes it) or an empty string would mean the same.
UNKNOWN_DATE_TEXTS = ("none", "null", "")

USER_AGENT = "PaperTrade/0.1"
PRICE_PLACES = Decimal("0.0001")
BURST_RETRY_AFTER = timedelta(seconds=2)
MINUTE_RETRY_AFTER = timedelta(seconds=60)
UPSTREAM_TEXT_LIMIT = 240

logger = logging.getLogger("marketdata.alpha_vantage")

_APIKEY_PARAM_RE = re.compile(r"(apikey=)[^&\s\"'#<>]*", re.IGNORECASE)
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_VOLUME_RE = re.compile(r"\d+(?:\.0*)?")

T = TypeVar("T")


def _now() -> datetime:
    """The clock (aware UTC); tests replace it."""
    return datetime.now(UTC)


def scrub(text: str, api_key: str) -> str:
    """``text`` with every occurrence of ``api_key`` (plain or URL-encoded) and every
    ``apikey=<value>`` query parameter replaced by ``***``."""
    text = str(text)
    if api_key:
        for form in sorted({api_key, quote(api_key, safe=""), quote_plus(api_key)}, key=len)[::-1]:
            text = text.replace(form, "***")
    return _APIKEY_PARAM_RE.sub(r"\1***", text)


class _ApiKeyParamFilter(logging.Filter):
    """urllib3 logs each request line (``GET /query?...&apikey=KEY``) at DEBUG: redact it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "apikey=" in message.lower():
            record.msg, record.args = scrub(message, ""), ()
        return True


def _install_urllib3_filter() -> None:
    pool_logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _ApiKeyParamFilter) for f in pool_logger.filters):
        pool_logger.addFilter(_ApiKeyParamFilter())


_install_urllib3_filter()


class TransientError(MarketDataUnavailable):
    """No answer this time (timeout, refused connection, HTTP 5xx): trying again may help."""


# --- Values ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DailySeries:
    ticker: str
    bars: tuple[DailyBar, ...]  # oldest first, sorted by day
    # Aware UTC. "Last Refreshed" is a date (-> that day's 16:00 New York close) or a naive
    # Eastern datetime (when fetched during the session); None when absent or unreadable.
    last_refreshed: datetime | None


@dataclass(frozen=True, slots=True)
class Quote:  # GLOBAL_QUOTE
    ticker: str
    price: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    volume: int
    latest_trading_day: date
    previous_close: Decimal
    change: Decimal
    change_percent: Decimal  # "-0.5852%" -> Decimal("-0.5852")


@dataclass(frozen=True, slots=True)
class FetchedAction:  # SPLITS, DIVIDENDS
    """One split or cash dividend as Alpha Vantage reports it, before anything is stored.

    Kept apart from the port's ``CorporateActionPoint``: the ticker and the source are the
    caller's to add, and ``declaration_date`` is carried because the answer has it.
    """

    kind: str  # ActionKind.SPLIT or ActionKind.DIVIDEND
    date: date  # a split's effective_date; a dividend's ex_dividend_date
    # A split's factor (new shares per old share) or a dividend's cash per share, as written
    # (not rounded to PRICE_PLACES: a factor like "0.3333" must keep its digits); always > 0.
    value: Decimal
    record_date: date | None = None
    pay_date: date | None = None
    declaration_date: date | None = None


BULK_LIMIT = 100  # symbols a REALTIME_BULK_QUOTES call may ask for


@dataclass(frozen=True, slots=True)
class BulkQuote:  # REALTIME_BULK_QUOTES (premium)
    """One symbol's quote from a bulk answer: its session so far (after the close, the day)."""

    ticker: str
    as_of: datetime  # UTC; the answer's timestamp is New York time
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    previous_close: Decimal | None

    @property
    def day(self) -> date:
        return self.as_of.astimezone(NEW_YORK).date()


# --- Parsing helpers ---------------------------------------------------------------------------
def _bulk_time(value: object) -> datetime:
    """A bulk quote's "2024-10-18 19:59:55.291" (New York time) as UTC."""
    if isinstance(value, str):
        for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
            try:
                naive = datetime.strptime(value.strip(), fmt)
            except ValueError:
                continue
            return naive.replace(tzinfo=NEW_YORK).astimezone(UTC)
    raise _Shape(f"timestamp is not a time: {str(value)[:30]!r}")


def _contains(text: str, wordings: tuple[str, ...]) -> bool:
    return any(w in text for w in wordings)


def _next_utc_midnight(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), clock_time(0), tzinfo=UTC)


def _parse_last_refreshed(value: object) -> datetime | None:
    # Meta Data says "US/Eastern"; we always read it as America/New_York (the same zone).
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if _DATE_RE.fullmatch(text):
            return close_of(date.fromisoformat(text))
        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
            try:
                naive = datetime.strptime(text, fmt)
            except ValueError:
                continue
            return naive.replace(tzinfo=NEW_YORK).astimezone(UTC)
    except ValueError:
        return None
    return None


class _Shape(Exception):
    """A body that is not what the function returns; becomes MarketDataUnavailable."""


def _text(row: dict, key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _Shape(f"missing {key!r}")
    return value.strip()


def _number(value: object, what: str, *, percent: bool = False) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Shape(f"{what} is not a number")
    text = str(value).strip()
    if percent and text.endswith("%"):
        text = text[:-1].strip()
    if not _NUMBER_RE.fullmatch(text):
        raise _Shape(f"{what} is not a number: {text[:20]!r}")
    try:
        return Decimal(text).quantize(PRICE_PLACES, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise _Shape(f"{what} is out of range") from None


def _price(row: dict, key: str, *, positive: bool = False) -> Decimal:
    value = _number(row.get(key), key)
    if value < 0 or (positive and value == 0):
        raise _Shape(f"{key} is not a price: {value}")
    return value


def _volume(row: dict, key: str) -> int:
    value = row.get(key)
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )
    if not _VOLUME_RE.fullmatch(text):
        raise _Shape(f"{key} is not a volume")
    return int(Decimal(text))


def _day(value: object, what: str) -> date:
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value.strip()):
        raise _Shape(f"{what} is not a date")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise _Shape(f"{what} is not a date") from None


def _daily_bar(day_key: object, row: object) -> DailyBar:
    if not isinstance(row, dict):
        raise _Shape("a daily row is not an object")
    # TIME_SERIES_DAILY has "5. volume"; the DAILY_ADJUSTED layout puts it at "6. volume".
    volume_key = "5. volume" if "5. volume" in row else "6. volume"
    return DailyBar(
        day=_day(day_key, "a row date"),
        open=_price(row, "1. open"),
        high=_price(row, "2. high"),
        low=_price(row, "3. low"),
        close=_price(row, "4. close", positive=True),
        volume=_volume(row, volume_key),
    )


def _positive_decimal(row: dict, key: str) -> Decimal:
    """The exact decimal written in ``row[key]`` (never through float), which must be > 0."""
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Shape(f"{key} is not a decimal string")
    text = str(value).strip()
    if not _NUMBER_RE.fullmatch(text):
        raise _Shape(f"{key} is not a number: {text[:20]!r}")
    number = Decimal(text)
    if number <= 0:
        raise _Shape(f"{key} is not positive: {text[:20]!r}")
    return number


def _optional_day(row: dict, key: str) -> date | None:
    """A date the answer may not know ("None" in older DIVIDENDS rows, or absent): None then.
    Any other text must be a date: a garbled one is a garbled answer, not an unknown date."""
    value = row.get(key)
    if value is None or (isinstance(value, str) and value.strip().lower() in UNKNOWN_DATE_TEXTS):
        return None
    return _day(value, key)


def _split(row: object) -> FetchedAction:
    if not isinstance(row, dict):
        raise _Shape("a split row is not an object")
    return FetchedAction(
        kind=ActionKind.SPLIT,
        date=_day(row.get("effective_date"), "effective_date"),
        value=_positive_decimal(row, "split_factor"),
    )


def _dividend(row: object) -> FetchedAction:
    if not isinstance(row, dict):
        raise _Shape("a dividend row is not an object")
    return FetchedAction(
        kind=ActionKind.DIVIDEND,
        date=_day(row.get("ex_dividend_date"), "ex_dividend_date"),
        value=_positive_decimal(row, "amount"),
        record_date=_optional_day(row, "record_date"),
        pay_date=_optional_day(row, "payment_date"),
        declaration_date=_optional_day(row, "declaration_date"),
    )


# --- The client --------------------------------------------------------------------------------
class AlphaVantageClient:
    """One Alpha Vantage key against one base URL (``…/query``).

    ``premium`` asks ``outputsize=full`` for daily series; a free key gets ``compact`` (100 bars).
    Methods raise the port's errors (see the module docstring) and
    ``marketdata.port.InvalidTicker`` for a ticker that cannot be one (no call is made).
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: float,
        premium: bool = False,
        session: requests.Session | None = None,
    ) -> None:
        self._api_key = api_key or ""
        self.base_url = base_url
        self.timeout = timeout
        self.premium = premium
        self._session = session if session is not None else requests.Session()

    def __repr__(self) -> str:
        return (
            f"AlphaVantageClient(base_url={self._scrub(self.base_url)!r}, "
            f"premium={self.premium!r}, timeout={self.timeout!r})"
        )

    # --- public API ----------------------------------------------------------------------------
    def daily(self, ticker: str) -> DailySeries:
        """TIME_SERIES_DAILY: ``compact`` (last 100 sessions), or ``full`` when ``premium``."""
        symbol = normalize_ticker(ticker)
        outputsize = "full" if self.premium else "compact"
        params = {"symbol": symbol, "outputsize": outputsize}
        return self._call("TIME_SERIES_DAILY", symbol, params, self._parse_daily)

    def quote(self, ticker: str) -> Quote:
        """GLOBAL_QUOTE (end-of-day data on a free key)."""
        symbol = normalize_ticker(ticker)
        return self._call("GLOBAL_QUOTE", symbol, {"symbol": symbol}, self._parse_quote)

    def search(self, keywords: str, *, timeout: float | None = None) -> list[SymbolMatch]:
        """SYMBOL_SEARCH, in the API's order. Matches whose symbol is not a valid ticker here
        (e.g. longer than 10 characters) are left out. Blank keywords: ``[]`` without a call.
        ``timeout`` overrides the client's (a person typing waits less than a worker)."""
        keywords = (keywords or "").strip()
        if not keywords:
            return []
        params = {"keywords": keywords}
        return self._call("SYMBOL_SEARCH", keywords, params, self._parse_search, timeout=timeout)

    def splits(self, ticker: str) -> list[FetchedAction]:
        """SPLITS: every split Alpha Vantage records for ``ticker``, oldest first (``[]``: none).
        Needed because TIME_SERIES_DAILY is as traded: a split shows there as a price drop."""
        symbol = normalize_ticker(ticker)
        return self._call("SPLITS", symbol, {"symbol": symbol}, self._parse_splits)

    def dividends(self, ticker: str) -> list[FetchedAction]:
        """DIVIDENDS: every cash dividend Alpha Vantage records for ``ticker``, oldest first by
        ex-date (``[]``: none). Dates the answer does not know are None."""
        symbol = normalize_ticker(ticker)
        return self._call("DIVIDENDS", symbol, {"symbol": symbol}, self._parse_dividends)

    def bulk_quotes(self, tickers: Sequence[str]) -> list[BulkQuote]:
        """REALTIME_BULK_QUOTES: the quotes of up to BULK_LIMIT tickers in one call (premium).
        A symbol the answer leaves out is simply missing from the list; a key not entitled to
        the function gets ProviderMisconfigured (the answer is an artificial sample)."""
        symbols = list(dict.fromkeys(normalize_ticker(t) for t in tickers))
        if not symbols:
            return []
        if len(symbols) > BULK_LIMIT:
            raise ValueError(f"at most {BULK_LIMIT} symbols a call, not {len(symbols)}")
        subject = symbols[0] if len(symbols) == 1 else f"{symbols[0]} and {len(symbols) - 1} more"
        params = {"symbol": ",".join(symbols)}
        return self._call("REALTIME_BULK_QUOTES", subject, params, self._parse_bulk)

    # --- transport -----------------------------------------------------------------------------
    def _scrub(self, text: object) -> str:
        return scrub(str(text), self._api_key)

    def _call(
        self,
        function: str,
        subject: str,
        params: dict[str, str],
        parse: Callable[..., T],
        *,
        timeout: float | None = None,
    ) -> T:
        if not self._api_key:
            raise ProviderMisconfigured(
                "No Alpha Vantage API key: set ALPHA_VANTAGE_API_KEY (a free key takes 20 seconds "
                "at https://www.alphavantage.co/support/#api-key)."
            )
        query = {"function": function, **params, "apikey": self._api_key}
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        started = time.monotonic()
        status: int | None = None
        error: MarketDataError | None = None
        result: T | None = None
        try:
            response = self._session.get(
                self.base_url,
                params=query,
                headers=headers,
                timeout=self.timeout if timeout is None else timeout,
            )
        except requests.Timeout:
            error = TransientError(f"Alpha Vantage {function} {subject}: timed out")
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            error = TransientError(f"Alpha Vantage {function} {subject}: connection failed")
        except (
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidURL,
        ):
            error = ProviderMisconfigured(
                f"Alpha Vantage base URL {self._scrub(self.base_url)!r} is not a valid URL: "
                "check ALPHA_VANTAGE_BASE_URL."
            )
        except requests.RequestException as exc:
            error = MarketDataUnavailable(
                f"Alpha Vantage {function} {subject}: request failed ({type(exc).__name__})."
            )
        else:
            status = response.status_code
            if status >= 500 or status == 408:
                error = TransientError(f"Alpha Vantage {function} {subject}: HTTP {status}")
            elif status == 429:
                error = RateLimited(
                    f"Alpha Vantage {function} {subject}: HTTP 429 Too Many Requests.",
                    retry_at=_now() + MINUTE_RETRY_AFTER,
                    scope="upstream",
                )
            elif status >= 400:
                error = ProviderMisconfigured(
                    f"Alpha Vantage {function} {subject}: HTTP {status} from "
                    f"{self._scrub(self.base_url)!r}: check ALPHA_VANTAGE_BASE_URL."
                )
            else:
                try:
                    result = parse(function, subject, self._decode(function, subject, response))
                except MarketDataError as exc:
                    error = exc
        elapsed_ms = (time.monotonic() - started) * 1000
        self._log(function, subject, _outcome(error), status, elapsed_ms)
        if error is not None:
            raise error  # raised outside any `except`: no chained exception carries the URL
        return result  # type: ignore[return-value]

    def _log(
        self,
        function: str,
        subject: str,
        outcome: str,
        status: int | None,
        elapsed_ms: float,
    ) -> None:
        level = logging.INFO if outcome in ("ok", "not_found") else logging.WARNING
        if outcome.startswith("misconfigured"):
            level = logging.ERROR
        logger.log(
            level,
            "alpha_vantage function=%s symbol=%s outcome=%s status=%s elapsed_ms=%d",
            function,
            self._scrub(ascii(subject)[1:-1][:40]),
            self._scrub(outcome),
            status if status is not None else "-",
            round(elapsed_ms),
        )

    def _decode(self, function: str, subject: str, response: requests.Response) -> Any:
        try:
            return json.loads(response.content)
        except (ValueError, RecursionError):
            content_type = response.headers.get("Content-Type", "?")
            size = len(response.content)
        raise MarketDataUnavailable(
            f"Alpha Vantage {function} {subject}: the answer is not JSON "
            f"({self._scrub(content_type)[:60]}, {size} bytes)."
        )

    # --- classification ------------------------------------------------------------------------
    def _upstream(self, text: str) -> str:
        text = self._scrub(" ".join(text.split()))
        if len(text) > UPSTREAM_TEXT_LIMIT:
            text = text[: UPSTREAM_TEXT_LIMIT - 1] + "…"
        return text

    def _raise_for_error_body(
        self, function: str, subject: str, body: dict, *, ticker: bool, has_data: bool
    ) -> None:
        """Raise for every known error or notice body; ``has_data``: the expected structure is
        there (only then may an unknown notice pass as informational)."""
        where = f"Alpha Vantage {function} {subject}"
        error_message = body.get("Error Message")
        if error_message is not None:
            raw = str(error_message)
            said = self._upstream(raw)
            low = raw.lower()
            if _contains(low, BAD_KEY_WORDINGS):
                raise ProviderMisconfigured(
                    f"{where}: the API key is invalid or missing: set ALPHA_VANTAGE_API_KEY to a "
                    f"valid key (upstream said: {said})"
                )
            if _contains(low, UNKNOWN_FUNCTION_WORDINGS):
                raise ProviderMisconfigured(
                    f"{where}: the function is unknown upstream: check ALPHA_VANTAGE_BASE_URL "
                    f"points at Alpha Vantage's /query endpoint (upstream said: {said})"
                )
            if _contains(low, INVALID_CALL_WORDINGS) and ticker:
                raise TickerNotFound(subject, f"Alpha Vantage does not know {subject}.")
            raise MarketDataUnavailable(f"{where}: error (upstream said: {said})")

        message = body.get("message")
        if isinstance(message, str):
            low = message.lower()
            if _contains(low, ARTIFICIAL_SAMPLE_WORDINGS) or _contains(low, PREMIUM_WORDINGS):
                raise ProviderMisconfigured(
                    f"{where}: this API key is not entitled to this premium data; the answer is an "
                    f"artificial sample (upstream said: {self._upstream(message)})"
                )

        for key in NOTICE_KEYS:
            notice = body.get(key)
            if notice is None:
                continue
            raw = str(notice)
            low = raw.lower()
            said = self._upstream(raw)
            now = _now()
            if _contains(low, DEMO_KEY_WORDINGS):
                raise ProviderMisconfigured(
                    f"{where}: Alpha Vantage treats this as the public demo key, which only serves "
                    f"the documentation's examples: set ALPHA_VANTAGE_API_KEY to your own key "
                    f"(upstream said: {said})"
                )
            if _contains(low, BURST_LIMIT_WORDINGS):
                raise RateLimited(
                    f"{where}: rate limited (about 1 request a second) (upstream said: {said})",
                    retry_at=now + BURST_RETRY_AFTER,
                    scope="second",
                )
            if _contains(low, MINUTE_LIMIT_WORDINGS):
                raise RateLimited(
                    f"{where}: rate limited (calls per minute) (upstream said: {said})",
                    retry_at=now + MINUTE_RETRY_AFTER,
                    scope="minute",
                )
            if _contains(low, DAILY_LIMIT_WORDINGS):
                # The daily quota's reset time is not documented (API-FACTS §4); we assume the
                # next 00:00 UTC, as some clients do.
                raise RateLimited(
                    f"{where}: the daily request quota is spent (upstream said: {said})",
                    retry_at=_next_utc_midnight(now),
                    scope="day",
                )
            if _contains(low, PREMIUM_WORDINGS):
                if _contains(low, OUTPUTSIZE_FULL_WORDINGS) or (
                    self.premium and function == "TIME_SERIES_DAILY"
                ):
                    hint = (
                        "outputsize=full needs a premium key: set market_data.premium = false in "
                        "config.toml (or upgrade the key)"
                    )
                else:
                    hint = f"{function} needs a premium Alpha Vantage plan for this key"
                raise ProviderMisconfigured(f"{where}: {hint} (upstream said: {said})")
            if not has_data:
                raise MarketDataUnavailable(f"{where}: unrecognised notice (upstream said: {said})")
            # An unknown notice next to well-formed data is informational: the data stands.

    def _shape_error(self, function: str, subject: str, detail: str) -> MarketDataUnavailable:
        return MarketDataUnavailable(
            f"Alpha Vantage {function} {subject}: unexpected answer ({self._scrub(detail)})."
        )

    def _parse_daily(self, function: str, subject: str, body: Any) -> DailySeries:
        if not isinstance(body, dict):
            raise self._shape_error(function, subject, f"a JSON {type(body).__name__}")
        series = body.get(DAILY_SERIES_KEY)
        has_data = isinstance(series, dict) and bool(series)
        self._raise_for_error_body(function, subject, body, ticker=True, has_data=has_data)
        if not body:
            raise self._shape_error(function, subject, "an empty object")
        if not has_data:
            raise self._shape_error(function, subject, f"no non-empty {DAILY_SERIES_KEY!r}")
        try:
            bars = tuple(sorted((_daily_bar(k, v) for k, v in series.items()), key=_by_day))
        except _Shape as exc:
            raise self._shape_error(function, subject, str(exc)) from None
        meta = body.get("Meta Data")
        refreshed = (
            _parse_last_refreshed(meta.get("3. Last Refreshed")) if isinstance(meta, dict) else None
        )
        return DailySeries(ticker=subject, bars=bars, last_refreshed=refreshed)

    def _parse_quote(self, function: str, subject: str, body: Any) -> Quote:
        if not isinstance(body, dict):
            raise self._shape_error(function, subject, f"a JSON {type(body).__name__}")
        row = body.get(QUOTE_KEY)
        has_data = isinstance(row, dict) and bool(row)
        self._raise_for_error_body(function, subject, body, ticker=True, has_data=has_data)
        if not body:
            raise self._shape_error(function, subject, "an empty object")
        if row == {}:  # E2: an unknown symbol gets an empty quote, no error key at all
            raise TickerNotFound(subject, f"Alpha Vantage does not know {subject}.")
        if not has_data:
            raise self._shape_error(function, subject, f"no non-empty {QUOTE_KEY!r}")
        try:
            return Quote(
                ticker=subject,
                price=_price(row, "05. price", positive=True),
                open=_price(row, "02. open"),
                high=_price(row, "03. high"),
                low=_price(row, "04. low"),
                volume=_volume(row, "06. volume"),
                latest_trading_day=_day(row.get("07. latest trading day"), "latest trading day"),
                previous_close=_price(row, "08. previous close"),
                change=_number(row.get("09. change"), "09. change"),
                change_percent=_number(
                    row.get("10. change percent"), "10. change percent", percent=True
                ),
            )
        except _Shape as exc:
            raise self._shape_error(function, subject, str(exc)) from None

    def _parse_search(self, function: str, subject: str, body: Any) -> list[SymbolMatch]:
        if not isinstance(body, dict):
            raise self._shape_error(function, subject, f"a JSON {type(body).__name__}")
        rows = body.get(SEARCH_KEY)
        has_data = isinstance(rows, list)
        self._raise_for_error_body(function, subject, body, ticker=False, has_data=has_data)
        if not body:
            raise self._shape_error(function, subject, "an empty object")
        if not has_data:
            raise self._shape_error(function, subject, f"no {SEARCH_KEY!r} list")
        matches: list[SymbolMatch] = []
        try:
            for row in rows:
                if not isinstance(row, dict):
                    raise _Shape("a match is not an object")
                symbol = _text(row, "1. symbol")
                name = _text(row, "2. name")
                region = _text(row, "4. region")
                currency = _text(row, "8. currency")
                try:
                    ticker = normalize_ticker(symbol)
                except InvalidTicker:
                    continue  # e.g. RELIANCE.BSE (12 characters): not a ticker this app can hold
                matches.append(SymbolMatch(ticker, name, region=region, currency=currency))
        except _Shape as exc:
            raise self._shape_error(function, subject, str(exc)) from None
        return matches

    def _parse_bulk(self, function: str, subject: str, body: Any) -> list[BulkQuote]:
        if not isinstance(body, dict):
            raise self._shape_error(function, subject, f"a JSON {type(body).__name__}")
        rows = body.get(ACTIONS_KEY)  # "data", as for SPLITS and DIVIDENDS
        has_data = isinstance(rows, list)
        self._raise_for_error_body(function, subject, body, ticker=False, has_data=has_data)
        if not body:
            raise self._shape_error(function, subject, "an empty object")
        if not has_data:
            raise self._shape_error(function, subject, f"no {ACTIONS_KEY!r} list")
        quotes = []
        try:
            for row in rows:
                if not isinstance(row, dict):
                    raise _Shape("a quote is not an object")
                try:
                    ticker = normalize_ticker(_text(row, "symbol"))
                except InvalidTicker:
                    continue
                previous = row.get("previous_close")
                quotes.append(
                    BulkQuote(
                        ticker=ticker,
                        as_of=_bulk_time(row.get("timestamp")),
                        open=_price(row, "open", positive=True),
                        high=_price(row, "high", positive=True),
                        low=_price(row, "low", positive=True),
                        close=_price(row, "close", positive=True),
                        volume=_volume(row, "volume"),
                        previous_close=(
                            _price(row, "previous_close", positive=True)
                            if previous not in (None, "")
                            else None
                        ),
                    )
                )
        except _Shape as exc:
            raise self._shape_error(function, subject, str(exc)) from None
        return quotes

    def _parse_splits(self, function: str, subject: str, body: Any) -> list[FetchedAction]:
        return self._parse_actions(function, subject, body, _split)

    def _parse_dividends(self, function: str, subject: str, body: Any) -> list[FetchedAction]:
        return self._parse_actions(function, subject, body, _dividend)

    def _parse_actions(
        self,
        function: str,
        subject: str,
        body: Any,
        read_row: Callable[[object], FetchedAction],
    ) -> list[FetchedAction]:
        """SPLITS and DIVIDENDS share one shape: ``{"symbol": ..., "data": [row, ...]}``.

        An empty ``data`` list is an answer (no actions), as an empty ``bestMatches`` is for a
        search. One unreadable row (a required date or value missing, malformed, or not > 0)
        rejects the whole answer, as one bad bar rejects a daily series: storing the rest would
        silently drop a split and mis-adjust every price before it. ``symbol`` is not compared
        with the ticker asked, as the other functions do not compare theirs.
        """
        if not isinstance(body, dict):
            raise self._shape_error(function, subject, f"a JSON {type(body).__name__}")
        rows = body.get(ACTIONS_KEY)
        has_data = isinstance(rows, list)
        self._raise_for_error_body(function, subject, body, ticker=True, has_data=has_data)
        if not body:
            raise self._shape_error(function, subject, "an empty object")
        if not has_data:
            raise self._shape_error(function, subject, f"no {ACTIONS_KEY!r} list")
        try:
            actions = [read_row(row) for row in rows]
        except _Shape as exc:
            raise self._shape_error(function, subject, str(exc)) from None
        # Oldest first, like a daily series (the API answers newest first); sorted() is stable.
        return sorted(actions, key=_by_date)


def _by_day(bar: DailyBar) -> date:
    return bar.day


def _by_date(action: FetchedAction) -> date:
    return action.date


def _outcome(error: MarketDataError | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, TickerNotFound):
        return "not_found"
    if isinstance(error, RateLimited):
        return f"rate_limited:{error.scope}"
    if isinstance(error, ProviderMisconfigured):
        return "misconfigured"
    return f"unavailable ({str(error)[:120]})"
