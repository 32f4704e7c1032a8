"""Loading daily bars from CSV files into ``PriceHistory`` (``import_prices --from-file``).

Two layouts are read, told apart by their header: ours, ``date,open,high,low,close,volume``
(oldest first, as in ``data/prices/``), and Alpha Vantage's ``datatype=csv`` answer to
``TIME_SERIES_DAILY``, ``timestamp,open,high,low,close,volume`` (newest first). Row order does
not matter.

A file is loaded whole or not at all: a first pass streams it and checks every row, a second
pass streams it again and upserts in batches inside one transaction. Memory stays flat in the
file's size: rows are never all held at once, and duplicate dates are found with a bitmap of
day numbers.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NamedTuple, Protocol

from django.db import transaction
from django.utils import timezone

from marketdata.models import PRICE_DECIMAL_PLACES, PRICE_MAX_DIGITS
from marketdata.port import Source
from marketdata.services import forget_current_prices
from marketdata.storage import upsert_daily_bars
from marketdata.tickers import InvalidTicker, normalize_ticker

COLUMNS = ("open", "high", "low", "close", "volume")
HEADERS = {
    ("date", *COLUMNS): "ours",
    ("timestamp", *COLUMNS): "alpha_vantage",
}
BATCH_SIZE = 5_000
MAX_REPORTED_PROBLEMS = 20

DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
PRICE_RE = re.compile(r"[+-]?\d+(?:\.\d+)?")
VOLUME_RE = re.compile(r"\d+")
PRICE_LIMIT = Decimal(10) ** (PRICE_MAX_DIGITS - PRICE_DECIMAL_PLACES)
VOLUME_LIMIT = 2**63  # BigIntegerField


class PriceFileError(Exception):
    """A price file that cannot be loaded; nothing of it was stored.

    ``problems`` holds the first ``MAX_REPORTED_PROBLEMS`` messages, each ``PATH:LINE: what``;
    ``count`` is how many problems were found in all.
    """

    def __init__(self, path: Path | str, problems: list[str], count: int | None = None) -> None:
        self.path = str(path)
        self.problems = problems[:MAX_REPORTED_PROBLEMS]
        self.count = len(problems) if count is None else count
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        more = self.count - len(self.problems)
        return self.problems + ([f"{self.path}: … and {more:,} more"] if more > 0 else [])


class Progress(Protocol):
    """What the importer reports progress to (a ``tqdm`` bar fits)."""

    def reset(self, total: int | None = None) -> object: ...

    def update(self, n: int = 1) -> object: ...


class Bar(NamedTuple):
    """One parsed row: small, so that a batch of them stays cheap."""

    day: date
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int


@dataclass(frozen=True, slots=True)
class ImportResult:
    path: str
    ticker: str
    rows: int
    inserted: int
    updated: int
    unchanged: int


def import_price_file(
    *,
    path: Path | str,
    ticker: str | None = None,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportResult:
    """Upsert every row of the CSV at ``path`` as a daily ``source=import`` bar of ``ticker``.

    ``ticker`` defaults to the file's name without its extension (``AAPL.csv`` → ``AAPL``).
    Raises PriceFileError listing the bad rows (``PATH:LINE: what``) and stores nothing if the
    file cannot be read or any row is bad. Bars already stored with the same prices and volume
    are left untouched (counted ``unchanged``); differing ones are overwritten (``updated``).
    The cached current price of the ticker is forgotten afterwards.
    """
    path = Path(path)
    ticker = _ticker_for(path, ticker)
    rows = _check(path, progress)
    if progress is not None:
        progress.reset(total=rows)

    inserted = updated = 0
    fetched_at = timezone.now()
    with transaction.atomic():
        for batch in _batched(_good_bars(path), batch_size):
            added, changed = _store(ticker, batch, fetched_at)
            inserted, updated = inserted + added, updated + changed
            if progress is not None:
                progress.update(len(batch))
    forget_current_prices([ticker])
    return ImportResult(
        path=str(path),
        ticker=ticker,
        rows=rows,
        inserted=inserted,
        updated=updated,
        unchanged=rows - inserted - updated,
    )


def _ticker_for(path: Path, ticker: str | None) -> str:
    try:
        return normalize_ticker(ticker if ticker is not None else path.stem)
    except InvalidTicker as exc:
        if ticker is not None:
            raise PriceFileError(
                path, [f"{path}: the ticker {ticker!r} is not valid: {exc}"]
            ) from None
        raise PriceFileError(
            path,
            [
                f"{path}: cannot tell the ticker from the file name {path.stem!r} ({exc}); "
                "name the file TICKER.csv or give the ticker"
            ],
        ) from None


# --- reading --------------------------------------------------------------------------------


def _check(path: Path, progress: Progress | None) -> int:
    """Stream the whole file once; return its row count or raise PriceFileError."""
    problems: list[str] = []
    count = rows = 0
    seen = bytearray(date.max.toordinal() // 8 + 1)  # one bit per possible day: 457 kB
    for line, parsed in _read(path):
        if isinstance(parsed, Bar):
            rows += 1
            day = parsed.day.toordinal()
            if seen[day >> 3] & (1 << (day & 7)):
                parsed = f"the date {parsed.day} appears on an earlier line too"
            else:
                seen[day >> 3] |= 1 << (day & 7)
            if progress is not None and rows % BATCH_SIZE == 0:
                progress.update(BATCH_SIZE)
        if isinstance(parsed, str):
            count += 1
            if len(problems) < MAX_REPORTED_PROBLEMS:
                problems.append(f"{path}:{line}: {parsed}" if line else f"{path}: {parsed}")
    if count:
        raise PriceFileError(path, problems, count)
    return rows


def _good_bars(path: Path) -> Iterator[Bar]:
    """The bars of a file already checked; a problem now means it changed underneath us."""
    for line, parsed in _read(path):
        if isinstance(parsed, str):
            raise PriceFileError(path, [f"{path}:{line}: {parsed} (the file changed)"])
        yield parsed


def _batched(bars: Iterator[Bar], size: int) -> Iterator[list[Bar]]:
    batch: list[Bar] = []
    for bar in bars:
        batch.append(bar)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _read(path: Path) -> Iterator[tuple[int, Bar | str]]:
    line = 0
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next((row for row in reader if row), None)  # past blank lines
            line = reader.line_num
            if header is None:
                yield 0, "the file is empty"
                return
            if tuple(cell.strip().lower() for cell in header) not in HEADERS:
                found = ",".join(header)
                found = found if len(found) <= 80 else found[:77] + "..."
                expected = " or ".join(",".join(h) for h in HEADERS)
                yield line, f"the header should be {expected}; found {found!r}"
                return
            for row in reader:
                line = reader.line_num
                if row:  # a blank line is no row
                    yield line, _parse(row)
    except FileNotFoundError:
        yield 0, "no such file"
    except IsADirectoryError:
        yield 0, "is a directory, not a file"
    except PermissionError:
        yield 0, "cannot read the file (permission denied)"
    except UnicodeDecodeError:
        yield line + 1, "not UTF-8 text; is this a CSV file?"
    except csv.Error as exc:
        yield line + 1, f"not readable as CSV ({exc})"
    except OSError as exc:
        yield 0, f"cannot read the file ({exc.strerror or exc})"


def _parse(row: list[str]) -> Bar | str:
    """A Bar from one row, or a message saying what is wrong with it (the first thing found)."""
    if len(row) != 6:
        return f"expected 6 columns, found {len(row)}"
    raw_day, *raw_prices, raw_volume = (cell.strip() for cell in row)
    day = _parse_date(raw_day)
    if isinstance(day, str):
        return day
    prices = []
    for name, raw in zip(COLUMNS[:4], raw_prices, strict=True):
        price = _parse_price(name, raw)
        if isinstance(price, str):
            return price
        prices.append(price)
    open_, high, low, close = prices
    if high < low:
        return f"high {raw_prices[1]} is below low {raw_prices[2]}"
    if not VOLUME_RE.fullmatch(raw_volume):
        return f"volume {raw_volume!r} is not a whole number of 0 or more"
    volume = int(raw_volume)
    if volume >= VOLUME_LIMIT:
        return f"volume {raw_volume} is too large"
    return Bar(day, open_, high, low, close, volume)


def _parse_date(raw: str) -> date | str:
    if DATE_RE.fullmatch(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    return f"date {raw!r} is not a date in the form YYYY-MM-DD"


def _parse_price(name: str, raw: str) -> Decimal | str:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return f"{name} {raw!r} is not a number"
    if not value.is_finite():
        return f"{name} {raw!r} is not a finite number"
    if not PRICE_RE.fullmatch(raw):
        return f"{name} {raw!r} is not a plain decimal number like 123.4500"
    if value <= 0:
        return f"{name} {raw} is not positive"
    if value.as_tuple().exponent < -PRICE_DECIMAL_PLACES:
        return f"{name} {raw} has more than {PRICE_DECIMAL_PLACES} decimal places"
    if value >= PRICE_LIMIT:
        return f"{name} {raw} is too large"
    return value


# --- storing --------------------------------------------------------------------------------


def _store(ticker: str, batch: list[Bar], fetched_at: datetime) -> tuple[int, int]:
    """Upsert the bars of ``batch`` that are new or differ from the stored ones."""
    return upsert_daily_bars(ticker=ticker, bars=batch, source=Source.IMPORT, fetched_at=fetched_at)
