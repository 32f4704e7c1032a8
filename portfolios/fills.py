"""When a waiting order fills, and at what price (PRODUCT §11.1): the conservative rule, checked
against a daily bar of a session that started after the order was placed.

- buy limit L: at the open if open ≤ L ("limit, opened through"), else at L if low ≤ L
  ("limit, touched");
- sell limit L: at the open if open ≥ L, else at L if high ≥ L;
- buy stop S: at the open if open ≥ S ("stop, gapped through"), else at S if high ≥ S
  ("stop, touched");
- sell stop S: at the open if open ≤ S, else at S if low ≤ S.

Otherwise the bar does not fill it. A bar can only fill an order placed before its session
opened (09:30 New York): what a day's bar shows may have happened before a later order
existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from marketdata.port import PricePoint, open_of

BUY, SELL = "BUY", "SELL"
LIMIT, STOP = "LIMIT", "STOP"


@dataclass(frozen=True)
class Fill:
    price: Decimal
    rule: str  # what fired, for the ledger's provenance: "limit, opened through", …


def fill(
    *, side: str, kind: str, trigger: Decimal, bar: PricePoint, placed_at: datetime
) -> Fill | None:
    """The fill ``bar`` gives an order (``side`` BUY/SELL, ``kind`` LIMIT/STOP at ``trigger``)
    placed at ``placed_at``; None when it gives none."""
    if placed_at >= open_of(bar.session_date):
        return None  # placed during or after this session: its bar says nothing of the order
    open_, high, low = bar.open, bar.high, bar.low
    if open_ is None or high is None or low is None:
        return None
    if _rises(side, kind):
        if open_ >= trigger:
            return Fill(open_, f"{_name(kind)}, {_through(kind)}")
        if high >= trigger:
            return Fill(trigger, f"{_name(kind)}, touched")
    else:
        if open_ <= trigger:
            return Fill(open_, f"{_name(kind)}, {_through(kind)}")
        if low <= trigger:
            return Fill(trigger, f"{_name(kind)}, touched")
    return None


def _rises(side: str, kind: str) -> bool:
    """The order fills when the price comes up to its trigger (a buy stop, a sell limit)."""
    return (side == BUY) == (kind == STOP)


def _name(kind: str) -> str:
    return "limit" if kind == LIMIT else "stop"


def _through(kind: str) -> str:
    return "opened through" if kind == LIMIT else "gapped through"


def fill_at_quote(*, side: str, kind: str, trigger: Decimal, price: Decimal) -> Fill | None:
    """The fill a live quote newer than the order gives it: at the quote's price when the
    order is marketable there (the same rule, the quote standing for a bar whose open, high and
    low are its price)."""
    if price >= trigger if _rises(side, kind) else price <= trigger:
        return Fill(price, f"{_name(kind)}, at a live quote")
    return None
