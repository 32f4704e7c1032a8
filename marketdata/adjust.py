"""Split adjustment, computed on read (PRODUCT §3.11): bars are stored as traded; a reader that
wants a series continuous across splits gets each bar in today's shares.

A bar of session ``d`` is divided by the product of the factors of the splits effective after
``d`` (its volume multiplied by it); prices are rounded half-even to 4 places, volumes to whole
shares. A split effective on ``d`` itself is already in ``d``'s bar: its previous close, from the
session before, is divided by that factor so that a day's change compares like with like
(``PriceHistoryQuerySet.latest_points`` does that, in its own query).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from marketdata.port import PricePoint

PRICE_STEP = Decimal("0.0001")
ONE = Decimal(1)


def in_new_shares(value: Decimal | None, factor: Decimal) -> Decimal | None:
    """A price from before a split of ``factor``, in the shares after it (4 places, half-even)."""
    if value is None or factor == ONE:
        return value
    return (value / factor).quantize(PRICE_STEP, ROUND_HALF_EVEN)


def factor_after(day: date, splits: Sequence[tuple[date, Decimal]]) -> Decimal:
    """The product of the factors of ``splits`` (effective date, factor) effective after
    ``day``."""
    factor = ONE
    for effective, value in splits:
        if effective > day:
            factor *= value
    return factor


def split_adjusted(
    points: Sequence[PricePoint], splits: Sequence[tuple[date, Decimal]]
) -> list[PricePoint]:
    """``points`` (oldest first) in today's shares."""
    if not splits:
        return list(points)
    adjusted = []
    for point in points:
        factor = factor_after(point.session_date, splits)
        if factor == ONE:
            adjusted.append(point)
            continue
        volume = point.volume
        if volume is not None:
            volume = int((volume * factor).to_integral_value(ROUND_HALF_EVEN))
        adjusted.append(
            point.replace(
                price=in_new_shares(point.price, factor),
                open=in_new_shares(point.open, factor),
                high=in_new_shares(point.high, factor),
                low=in_new_shares(point.low, factor),
                close=in_new_shares(point.close, factor),
                previous_close=in_new_shares(point.previous_close, factor),
                volume=volume,
            )
        )
    return adjusted
