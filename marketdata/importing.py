"""Loading daily bars from CSV files into ``PriceHistory`` (``import_prices --from-file``).

Two layouts are read, told apart by their header: ours, ``date,open,high,low,close,volume``
(oldest first, as in ``data/prices/``), and Alpha Vantage's ``datatype=csv`` answer to
``TIME_SERIES_DAILY``, ``timestamp,open,high,low,close,volume`` (newest first). Row order does
not matter.

A file is loaded whole or not at all: a first pass streams it and checks every row, a second
pass streams it again and writes it inside one transaction (on PostgreSQL with ``COPY`` into a
staging table and one upsert, ``storage.copy_daily_bars``; elsewhere in batches of
``upsert_daily_bars``). Memory stays flat in the file's size: rows are never all held at once,
and duplicate dates are found with a bitmap of day numbers.

One parser reads a row (``_parse``: ``Decimal`` prices and every check). A row in the plain
form (``PLAIN_ROW``) skips it on the first pass: its shape is checked by the pattern, and what
a bar must be besides (prices positive, high at least low) is checked where the rows are
written, in SQL over all of them at once; a file that fails there is read again by the parser
to say which rows, as ``PATH:LINE: what``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Protocol, TypeVar

from django.db import connection, transaction
from django.utils import timezone

from marketdata.bars import DailyBar
from marketdata.models import PRICE_DECIMAL_PLACES, PRICE_MAX_DIGITS
from marketdata.port import InvalidTicker, Source, normalize_ticker
from marketdata.price_cache import announce_stored
from marketdata.storage import BadBars, copy_daily_bars, upsert_daily_bars

COLUMNS = ("open", "high", "low", "close", "volume")
HEADERS = {
    ("date", *COLUMNS): "ours",
    ("timestamp", *COLUMNS): "alpha_vantage",
}
BATCH_SIZE = 5_000
ROWS_PER_COMMIT = 50_000  # see import_price_files
MAX_REPORTED_PROBLEMS = 20
T = TypeVar("T")

DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
PRICE_RE = re.compile(r"[+-]?\d+(?:\.\d+)?")
# A row in the plain form (no quotes, spaces or signs; prices of at most 14 digits and
# PRICE_DECIMAL_PLACES decimals; volume below 10**18): what _check settles fast.
_PLAIN_PRICE = (
    rf"(\d{{1,{PRICE_MAX_DIGITS - PRICE_DECIMAL_PLACES}}}(?:\.\d{{1,{PRICE_DECIMAL_PLACES}}})?)"
)
PLAIN_ROW = re.compile(
    rf"(\d{{4}}-\d{{2}}-\d{{2}}),{_PLAIN_PRICE},{_PLAIN_PRICE},{_PLAIN_PRICE},{_PLAIN_PRICE},(\d{{1,18}})"
)
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
    The cached current price of the ticker is forgotten once the transaction commits (which is
    the caller's, if it called inside one).
    """
    checked = _checked(Path(path), ticker, progress)
    if progress is not None:
        progress.reset(total=checked.rows)
    with transaction.atomic():
        [result] = _write([checked], progress, batch_size)
    return result


def import_price_files(
    paths: Iterable[Path | str],
    *,
    ticker: str | None = None,
    rows_per_commit: int | None = None,
) -> Iterator[ImportResult | PriceFileError]:
    """``import_price_file`` for many files: each file's result or error, in order.

    Each file is still loaded whole or not at all, but good files are written and committed
    together until they hold ``rows_per_commit`` rows (default ``ROWS_PER_COMMIT``): a commit,
    a ``COPY`` and an upsert per small file would cost more than the file. Results are yielded
    once their group committed. An error (KeyboardInterrupt included) while a group is written
    rolls back that group only.
    """
    rows_per_commit = rows_per_commit or ROWS_PER_COMMIT
    group: list[_Checked] = []
    for path in paths:
        try:
            checked = _checked(Path(path), ticker, None)
        except PriceFileError as exc:
            yield exc
            continue
        if any(c.ticker == checked.ticker for c in group):
            yield from _commit(group)  # one upsert must not write a bar twice
            group = []
        group.append(checked)
        if sum(c.rows for c in group) >= rows_per_commit:
            yield from _commit(group)
            group = []
    if group:
        yield from _commit(group)


@dataclass(frozen=True, slots=True)
class _Checked:
    """A file whose every row was found good, as it was then (size, modification time)."""

    path: Path
    ticker: str
    rows: int
    plain: bool  # every row in the plain form (PLAIN_ROW)
    first_day: date | None
    last_day: date | None
    version: tuple[int, int] | None


def _checked(path: Path, ticker: str | None, progress: Progress | None) -> _Checked:
    ticker = _ticker_for(path, ticker)
    version = _version(path)
    return _Checked(path, ticker, *_check(path, progress), version)


def _commit(group: list[_Checked]) -> list[ImportResult | PriceFileError]:
    try:
        with transaction.atomic():
            return list(_write(group, None, BATCH_SIZE))
    except PriceFileError as exc:
        if len(group) == 1:
            return [exc]
    # A file changed after its check: load the group's files one by one, so that only it fails.
    results: list[ImportResult | PriceFileError] = []
    for checked in group:
        try:
            with transaction.atomic():
                results += _write([checked], None, BATCH_SIZE)
        except PriceFileError as exc:
            results.append(exc)
    return results


def _write(files: list[_Checked], progress: Progress | None, batch_size: int) -> list[ImportResult]:
    """Store the bars of checked files (of distinct tickers); runs in the caller's transaction."""
    fetched_at = timezone.now()
    if connection.vendor == "postgresql":
        try:
            counts = copy_daily_bars(
                chunks=lambda: _csv_chunks(files, batch_size, progress),
                ranges={f.ticker: (f.first_day, f.last_day) for f in files if f.rows},
                source=Source.IMPORT,
                fetched_at=fetched_at,
            )
        except BadBars:
            raise _worded(files) from None
    else:
        counts = {}
        for checked in files:
            inserted = updated = 0
            for batch in _batched(_good_bars(checked), batch_size):
                added, changed = upsert_daily_bars(
                    ticker=checked.ticker, bars=batch, source=Source.IMPORT, fetched_at=fetched_at
                )
                inserted, updated = inserted + added, updated + changed
                if progress is not None:
                    progress.update(len(batch))
            counts[checked.ticker] = (inserted, updated)
    tickers = [checked.ticker for checked in files]
    transaction.on_commit(lambda: announce_stored(tickers))
    results = []
    for checked in files:
        inserted, updated = counts.get(checked.ticker, (0, 0))
        results.append(
            ImportResult(
                path=str(checked.path),
                ticker=checked.ticker,
                rows=checked.rows,
                inserted=inserted,
                updated=updated,
                unchanged=checked.rows - inserted - updated,
            )
        )
    return results


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


def _check(
    path: Path, progress: Progress | None, *, full: bool = False
) -> tuple[int, bool, date | None, date | None]:
    """Stream the whole file once: (its row count, whether every row is plain, its first and
    last day), or raise PriceFileError.

    Every row goes through the one parser (``_row``: Decimal prices, every check), but for a
    plain row (PLAIN_ROW: its shape is the check) unless ``full``: its day is read here,
    inlined (this loop is most of an import's Python time), and what a bar must be besides
    (prices positive, high at least low) is checked where it is written, in SQL over all the
    rows at once (``storage.copy_daily_bars``), or by the parser on the row-by-row path. A
    file that fails there is read again with ``full`` to say which rows.
    """
    problems: list[str] = []
    count = rows = 0
    all_plain = True
    seen = bytearray(date.max.toordinal() // 8 + 1)  # one bit per possible day: 457 kB
    first, last = date.max.toordinal(), 0
    plain_row, from_iso = PLAIN_ROW.fullmatch, date.fromisoformat
    for line, text, problem in _lines(path):
        if problem is None:
            rows += 1
            day = None
            match = None if full else plain_row(text)
            if match is not None:
                try:
                    day = from_iso(text[:10]).toordinal()
                except ValueError:
                    day = None
            if day is None:  # not plain, or plain with a bad day: the parser says what
                parsed = _row(text)
                if isinstance(parsed, str):
                    problem = parsed
                else:
                    day = parsed[0].toordinal()
                    all_plain = all_plain and plain_row(text) is not None
            if day is not None:
                if seen[day >> 3] & (1 << (day & 7)):
                    problem = f"the date {date.fromordinal(day)} appears on an earlier line too"
                else:
                    seen[day >> 3] |= 1 << (day & 7)
                    if day < first:
                        first = day
                    if day > last:
                        last = day
            if progress is not None and rows % BATCH_SIZE == 0:
                progress.update(BATCH_SIZE)
        if problem is not None:
            count += 1
            if len(problems) < MAX_REPORTED_PROBLEMS:
                problems.append(f"{path}:{line}: {problem}" if line else f"{path}: {problem}")
    if count:
        raise PriceFileError(path, problems, count)
    if not rows:
        return 0, all_plain, None, None
    return rows, all_plain, date.fromordinal(first), date.fromordinal(last)


def _version(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


def _good_rows(checked: _Checked) -> Iterator[str]:
    """Each row of a checked file, as plain CSV (``day,open,high,low,close,volume``).

    Plain rows pass as they are: the check vouched for them, and the file is the one checked
    if its size and modification time are (looked at before and after).
    """
    path = checked.path
    _same_file(checked)
    if checked.plain:
        for line, text, problem in _lines(path):
            if problem is not None:
                raise PriceFileError(path, [f"{path}:{line}: {problem} (the file changed)"])
            yield text
        _same_file(checked)
        return
    for line, text, problem in _lines(path):
        if problem is None and PLAIN_ROW.fullmatch(text):
            yield text
            continue
        parsed = _row(text) if problem is None else problem
        if isinstance(parsed, str):
            raise PriceFileError(path, [f"{path}:{line}: {parsed} (the file changed)"])
        yield parsed[1]
    _same_file(checked)


def _same_file(checked: _Checked) -> None:
    if _version(checked.path) != checked.version:
        raise PriceFileError(
            checked.path, [f"{checked.path}: the file changed while it was being loaded"]
        )


def _csv_chunks(
    files: list[_Checked], size: int, progress: Progress | None
) -> Iterator[tuple[str, str]]:
    """(ticker, CSV text of its rows, ``day,open,high,low,close,volume``) for the rows of
    checked files, at most ``size`` rows a chunk."""
    for checked in files:
        for batch in _batched(_good_rows(checked), size):
            yield checked.ticker, "\n".join(batch) + "\n"
            if progress is not None:
                progress.update(len(batch))


def _good_bars(checked: _Checked) -> Iterator[DailyBar]:
    """The bars of a checked file, each through the parser (which also checks what the shape
    check left to the database: prices positive, high at least low)."""
    for text in _good_rows(checked):
        bar = _parse(text.split(","))
        if not isinstance(bar, DailyBar):
            raise _worded([checked])
        yield bar


def _worded(files: list[_Checked]) -> PriceFileError:
    """The error for files whose rows passed the shape check but are no bars: the full
    parser reads them again and says which rows, and why (``PATH:LINE: what``)."""
    for checked in files:
        try:
            _check(checked.path, None, full=True)
        except PriceFileError as exc:
            return exc
    path = files[0].path
    return PriceFileError(path, [f"{path}: the file changed while it was being loaded"])


def _batched(items: Iterator[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _lines(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line number, text, None) for each non-blank line after a good header, or
    (line number, "", what is wrong) when the file cannot be read on."""
    line = 0
    try:
        with path.open(encoding="utf-8-sig") as f:  # universal newlines: \n, \r\n, \r
            numbered = enumerate(f, start=1)
            line, header = next(((n, t) for n, t in numbered if t.strip("\r\n")), (0, None))
            if header is None:
                yield 0, "", "the file is empty"
                return
            cells = next(csv.reader([header]), [])
            if tuple(cell.strip().lower() for cell in cells) not in HEADERS:
                found = header.rstrip("\r\n")
                found = found if len(found) <= 80 else found[:77] + "..."
                expected = " or ".join(",".join(h) for h in HEADERS)
                yield line, "", f"the header should be {expected}; found {found!r}"
                return
            for line, text in numbered:
                text = text.rstrip("\r\n")
                if text:  # a blank line is no row
                    yield line, text, None
    except FileNotFoundError:
        yield 0, "", "no such file"
    except IsADirectoryError:
        yield 0, "", "is a directory, not a file"
    except PermissionError:
        yield 0, "", "cannot read the file (permission denied)"
    except UnicodeDecodeError:
        yield line + 1, "", "not UTF-8 text; is this a CSV file?"
    except csv.Error as exc:
        yield line, "", f"not readable as CSV ({exc})"
    except OSError as exc:
        yield 0, "", f"cannot read the file ({exc.strerror or exc})"


def _row(text: str) -> tuple[date, str] | str:
    """(day, the row as plain CSV) for a good row that is not plain (quotes, spaces,
    signs: see PLAIN_ROW), or what is wrong with the row, worded by the full parser. ``_check``
    settles plain rows itself."""
    try:
        cells = next(csv.reader([text]))
    except csv.Error as exc:
        return f"not readable as CSV ({exc})"
    parsed = _parse(cells)
    if isinstance(parsed, str):
        return parsed
    day_and_rest = (parsed.day.isoformat(), *parsed[1:])
    return parsed.day, ",".join(map(str, day_and_rest))


def _parse(row: list[str]) -> DailyBar | str:
    """A DailyBar from one row, or a message saying what is wrong with it (the first found)."""
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
    return DailyBar(day, open_, high, low, close, volume)


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
