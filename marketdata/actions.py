"""Storing corporate actions (PRODUCT §3.11): from a CSV file (``import_prices --actions``) or
from the provider (the scheduled job), into ``CorporateAction``, idempotently.

The CSV layout is ``ticker,kind,date,value`` with an optional fifth column ``pay_date``: one
row per action, ``kind`` ``split`` or ``dividend`` (any case), ``date`` a split's effective date
or a dividend's ex-date, ``value`` a split's factor (new shares per old: ``10`` for 10-for-1,
``0.1`` for 1-for-10) or a dividend's cash per share. A file is loaded whole or not at all; its
problems are reported as ``PATH:LINE: what``, like the price import's. Loading it again changes
nothing; a changed value or pay date updates the row.

After actions are stored, the cached current prices of their tickers are dropped (a split
changes how a day's change is measured) and ``market_data_stored`` is sent, so the ledger can
apply them to positions.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from marketdata.importing import MAX_REPORTED_PROBLEMS, PriceFileError
from marketdata.models import CorporateAction
from marketdata.port import ActionKind, InvalidTicker, Source, normalize_ticker
from marketdata.price_cache import announce_stored

HEADERS = (("ticker", "kind", "date", "value"), ("ticker", "kind", "date", "value", "pay_date"))
KINDS = {"split": ActionKind.SPLIT, "dividend": ActionKind.DIVIDEND}
VALUE_PLACES = 10
VALUE_LIMIT = Decimal(10) ** 10


@dataclass(frozen=True, slots=True)
class NewAction:
    """One action to store, from a file or the provider."""

    ticker: str
    kind: str
    date: date
    value: Decimal
    pay_date: date | None = None
    record_date: date | None = None
    declaration_date: date | None = None


@dataclass(frozen=True, slots=True)
class StoredActions:
    inserted: int
    updated: int
    unchanged: int
    tickers: tuple[str, ...]


def store_actions(actions: Iterable[NewAction], *, source: str) -> StoredActions:
    """Upsert ``actions`` in one transaction; then drop the cached prices of the tickers that
    changed and send ``market_data_stored`` for them."""
    actions = list(actions)
    inserted = updated = unchanged = 0
    changed: set[str] = set()
    now = timezone.now()
    with transaction.atomic():
        existing = {
            (a.ticker, a.kind, a.date): a
            for a in CorporateAction.objects.filter(
                ticker__in={a.ticker for a in actions}
            ).select_for_update()
        }
        for new in actions:
            row = existing.get((new.ticker, new.kind, new.date))
            fields = {
                "value": new.value,
                "pay_date": new.pay_date,
                "record_date": new.record_date or (row.record_date if row else None),
                "declaration_date": new.declaration_date or (row.declaration_date if row else None),
                "source": source,
            }
            if row is None:
                row = CorporateAction.objects.create(
                    ticker=new.ticker, kind=new.kind, date=new.date, fetched_at=now, **fields
                )
                existing[(new.ticker, new.kind, new.date)] = row
                inserted += 1
                changed.add(new.ticker)
            elif any(getattr(row, name) != value for name, value in fields.items()):
                for name, value in fields.items():
                    setattr(row, name, value)
                row.fetched_at = now
                row.save()
                updated += 1
                changed.add(new.ticker)
            else:
                unchanged += 1
        tickers = tuple(sorted(changed))
        if tickers:
            transaction.on_commit(lambda: announce_stored(tickers))
    return StoredActions(inserted, updated, unchanged, tickers)


def import_action_file(path: Path) -> StoredActions:
    """Load one CSV file of actions; raises PriceFileError (``PATH:LINE: what``) and stores
    nothing when any row is wrong."""
    actions, problems = [], []
    seen: dict[tuple[str, str, date], int] = {}
    for line, cells, problem in _rows(path):
        if problem is None:
            parsed = _parse(cells)
            if isinstance(parsed, NewAction):
                key = (parsed.ticker, parsed.kind, parsed.date)
                if key in seen:
                    problem = f"the same {parsed.kind.lower()} again (first on line {seen[key]})"
                else:
                    seen[key] = line
                    actions.append(parsed)
                    continue
            else:
                problem = parsed
        problems.append(f"{path}:{line}: {problem}")
    if problems:
        raise PriceFileError(path, problems[:MAX_REPORTED_PROBLEMS], count=len(problems))
    return store_actions(actions, source=Source.IMPORT)


def _rows(path: Path) -> Iterator[tuple[int, list[str], str | None]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = None
            for cells in reader:
                if not any(c.strip() for c in cells):
                    continue
                if header is None:
                    header = tuple(c.strip().lower() for c in cells)
                    if header not in HEADERS:
                        expected = " or ".join(",".join(h) for h in HEADERS)
                        yield reader.line_num, [], f"the header should be {expected}"
                        return
                    continue
                if len(cells) != len(header):
                    yield (
                        reader.line_num,
                        [],
                        (f"expected {len(header)} columns, found {len(cells)}"),
                    )
                    continue
                yield reader.line_num, [c.strip() for c in cells], None
            if header is None:
                yield 0, [], "the file is empty"
    except FileNotFoundError:
        yield 0, [], "no such file"
    except IsADirectoryError:
        yield 0, [], "is a directory, not a file"
    except UnicodeDecodeError:
        yield 0, [], "not UTF-8 text; is this a CSV file?"
    except csv.Error as exc:
        yield 0, [], f"not readable as CSV ({exc})"
    except OSError as exc:
        yield 0, [], f"cannot read the file ({exc.strerror or exc})"


def _parse(cells: list[str]) -> NewAction | str:
    raw_ticker, raw_kind, raw_date, raw_value, *rest = cells
    try:
        ticker = normalize_ticker(raw_ticker)
    except InvalidTicker as exc:
        return f"ticker {raw_ticker!r}: {exc}"
    kind = KINDS.get(raw_kind.lower())
    if kind is None:
        return f"kind {raw_kind!r} is not split or dividend"
    day = _day("date", raw_date)
    if isinstance(day, str):
        return day
    value = _value(raw_value)
    if isinstance(value, str):
        return value
    if kind == ActionKind.SPLIT and value == 1:
        return "a split factor of 1 changes nothing"
    pay_date = None
    if rest and rest[0]:
        if kind == ActionKind.SPLIT:
            return "a split has no pay date"
        pay_date = _day("pay_date", rest[0])
        if isinstance(pay_date, str):
            return pay_date
        if pay_date < day:
            return f"pay_date {rest[0]} is before the ex-date {raw_date}"
    return NewAction(ticker, kind, day, value, pay_date)


def _day(name: str, raw: str) -> date | str:
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw)
    except ValueError:
        pass
    return f"{name} {raw!r} is not a date in the form YYYY-MM-DD"


def _value(raw: str) -> Decimal | str:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return f"value {raw!r} is not a number"
    if not value.is_finite() or not all(c.isdigit() or c == "." for c in raw):
        return f"value {raw!r} is not a plain decimal number like 10 or 0.26"
    if value <= 0:
        return f"value {raw} is not positive"
    if value.as_tuple().exponent < -VALUE_PLACES:
        return f"value {raw} has more than {VALUE_PLACES} decimal places"
    if value >= VALUE_LIMIT:
        return f"value {raw} is too large"
    return value
