"""A portfolio as files (PRODUCT §11): its transactions, its holdings and its value over time
as CSV. Money is written as plain decimals (no currency sign, no grouping), times as ISO-8601
in UTC beside the market's date (New York), with a header row, in UTF-8. The web downloads and
``manage.py export_portfolio`` write the same rows."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from datetime import datetime

from marketdata.port import session_date
from portfolios.models import Portfolio
from portfolios.performance import value_series
from portfolios.selectors import portfolio_summary

KINDS = ("transactions", "holdings", "value")

TRANSACTION_COLUMNS = (
    "id",
    "kind",
    "ticker",
    "quantity",
    "price",
    "cash_change",
    "realized_gain",
    "executed_at_utc",
    "market_date",
    "price_source",
    "price_as_of_utc",
    "price_market_date",
    "price_was_stale",
    "action_date",
    "action_value",
    "order_id",
    "price_rule",
)
HOLDING_COLUMNS = (
    "ticker",
    "quantity",
    "cost_basis",
    "average_cost",
    "price",
    "price_as_of_utc",
    "price_market_date",
    "price_source",
    "market_value",
    "unrealized_gain",
)
VALUE_COLUMNS = ("market_date", "value", "cash", "net_deposits", "carried_closes")


def _utc(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else ""


def _plain(value) -> str:
    return "" if value is None else f"{value:f}" if hasattr(value, "is_finite") else str(value)


def transaction_rows(portfolio: Portfolio) -> Iterator[tuple]:
    yield TRANSACTION_COLUMNS
    rows = portfolio.transactions.order_by("executed_at", "id")
    for t in rows.iterator(chunk_size=2000):
        yield (
            t.pk,
            t.kind,
            t.ticker,
            _plain(t.quantity),
            _plain(t.price),
            _plain(t.cash_change),
            _plain(t.realized_gain),
            _utc(t.executed_at),
            session_date(t.executed_at).isoformat(),
            t.price_source,
            _utc(t.price_as_of),
            session_date(t.price_as_of).isoformat() if t.price_as_of else "",
            "" if t.price_was_stale is None else str(t.price_was_stale).lower(),
            t.effective_on.isoformat() if t.effective_on else "",
            _plain(t.action_value),
            t.order_id or "",
            t.price_rule,
        )


def holding_rows(portfolio: Portfolio) -> Iterator[tuple]:
    yield HOLDING_COLUMNS
    for row in portfolio_summary(portfolio).holdings:
        price = row.price
        yield (
            row.ticker,
            _plain(row.quantity),
            _plain(row.cost_basis),
            _plain(row.average_cost),
            _plain(price.price) if price else "",
            _utc(price.as_of) if price else "",
            price.session_date.isoformat() if price else "",
            price.source if price else "",
            _plain(row.market_value),
            _plain(row.unrealized_gain),
        )


def value_rows(portfolio: Portfolio) -> Iterator[tuple]:
    yield VALUE_COLUMNS
    for p in value_series(portfolio):
        yield (
            p.day.isoformat(),
            _plain(p.value),
            _plain(p.cash),
            _plain(p.flow),
            " ".join(p.carried),
        )


ROWS = {"transactions": transaction_rows, "holdings": holding_rows, "value": value_rows}


def write_csv(rows: Iterable[tuple], out) -> None:
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow(row)


class _Line:
    """A file-like object whose ``write`` returns what it was given: csv.writer into a
    streaming response, one line at a time (Django's documented pattern)."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[tuple]) -> Iterator[str]:
    writer = csv.writer(_Line(), lineterminator="\r\n")
    for row in rows:
        yield writer.writerow(row)


def filename(portfolio: Portfolio, kind: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_]+", "-", portfolio.name).strip("-")  # an ASCII header value
    return f"portfolio-{portfolio.pk}-{safe or 'portfolio'}-{kind}.csv"
