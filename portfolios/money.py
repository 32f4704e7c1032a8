"""Money and quantity precision: one place for every ``DecimalField`` and rounding rule.

Cash is kept to the cent and rounded half-even ("banker's rounding"); prices and share
quantities to 4 places. Decimals are built from strings, never floats.
"""

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

CASH_PLACES = 2
CASH_MAX_DIGITS = 16  # up to 99,999,999,999,999.99 in a balance
PRICE_PLACES = 4
PRICE_MAX_DIGITS = 18
QUANTITY_PLACES = 4
QUANTITY_MAX_DIGITS = 14

CENT = Decimal("0.01")
PRICE_STEP = Decimal("0.0001")
QUANTITY_STEP = Decimal("0.0001")

# What one deposit, withdrawal or trade may move; the balance itself may not pass MAX_CASH.
MAX_AMOUNT = Decimal("1000000000.00")  # one billion dollars
MAX_CASH = Decimal("1000000000000.00")  # one trillion dollars
MAX_QUANTITY = Decimal("1000000000.0000")  # one billion shares


def to_cash(value: Decimal) -> Decimal:
    """Round to the cent, half to even."""
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def to_price(value: Decimal) -> Decimal:
    return value.quantize(PRICE_STEP, rounding=ROUND_HALF_EVEN)


def to_quantity(value: Decimal) -> Decimal:
    return value.quantize(QUANTITY_STEP, rounding=ROUND_HALF_EVEN)


def decimal_places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def parse_decimal(raw: str) -> Decimal | None:
    """A plain decimal number ("1234.56"), or None for anything else (NaN, "1e3", "1,000")."""
    text = raw.strip()
    if not text or not all(c.isdigit() or c == "." for c in text) or text.count(".") > 1:
        return None
    if not text.isascii() or text == ".":
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


# Commas only between groups of three digits before the point: 10,000 and 1,000.50, never
# 1,00 or 10,00,000 or 1.000,50 (each of which some reader takes for another number).
_GROUPED = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")


def parse_typed_number(raw: str) -> Decimal | None:
    """What a person types as an amount: a plain decimal, or one with thousands separators
    ("10,000", "1,000.50"); None for anything else, ambiguous groupings included."""
    text = raw.strip()
    if "," in text:
        if not _GROUPED.fullmatch(text):
            return None
        text = text.replace(",", "")
    return parse_decimal(text)


def is_negative_number(raw: str) -> bool:
    """``raw`` is a number with a minus sign ("-5", "−1,000"): worth its own message."""
    text = raw.strip()
    return text[:1] in ("-", "\u2212") and parse_typed_number(text[1:]) is not None


def format_money(value: Decimal) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(to_cash(value)):,.2f}"


def format_shares(value: Decimal) -> str:
    """A quantity without trailing zeros, with separators: 10, 0.5, 1,234.0001."""
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def format_price(value: Decimal) -> str:
    """A price to at most 4 places, at least 2: $150.00, $0.1234."""
    text = f"{abs(value):,.4f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{abs(value):,.2f}"
    return f"{'-' if value < 0 else ''}${text}"
