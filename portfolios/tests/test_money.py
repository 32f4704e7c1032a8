"""Money parsing, rounding and display: the helpers every form, service and template relies on."""

from decimal import Decimal

import pytest

from portfolios.money import (
    decimal_places,
    format_money,
    is_negative_number,
    parse_decimal,
    parse_typed_number,
    to_cash,
    to_price,
    to_quantity,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1234.56", Decimal("1234.56")),
        ("0.01", Decimal("0.01")),
        ("7", Decimal("7")),
        ("  42.5  ", Decimal("42.5")),
        ("0.0001", Decimal("0.0001")),
    ],
)
def test_it_reads_a_plain_decimal_number(raw, expected):
    value = parse_decimal(raw)

    assert value == expected
    assert isinstance(value, Decimal)
    assert value.as_tuple() == expected.as_tuple()  # the places typed are kept, not reformatted


@pytest.mark.parametrize(
    "raw",
    [
        "1e3",  # exponent trick
        "1E3",
        "1,000",  # thousands separator
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "inf",
        "-5",
        "+5",
        "١٢٣",  # Arabic-Indic digits: str.isdigit() says yes, Decimal() would accept them
        "１２３",  # full-width digits
        "²",  # a superscript is a "digit" to str.isdigit()
        " ",
        "",
        ".",
        "1.2.3",
        "1_000",
        "0x10",
        "12 34",
        "$5",
    ],
)
def test_it_refuses_anything_but_a_plain_decimal_number(raw):
    assert parse_decimal(raw) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.125", "0.12"),  # half goes to the even cent: down here...
        ("0.135", "0.14"),  # ...and up here
        ("2.675", "2.68"),
        ("2.665", "2.66"),
        ("0.005", "0.00"),
        ("0.015", "0.02"),
        ("0.1251", "0.13"),  # more than half always rounds up
        ("-0.125", "-0.12"),
        ("10", "10.00"),
    ],
)
def test_it_rounds_cash_half_to_even(value, expected):
    result = to_cash(Decimal(value))

    assert result == Decimal(expected)
    assert str(result) == expected  # exactly two places


def test_it_rounds_prices_and_quantities_to_four_places_half_to_even():
    assert str(to_price(Decimal("1.00005"))) == "1.0000"
    assert str(to_price(Decimal("1.00015"))) == "1.0002"
    assert str(to_quantity(Decimal("0.33335"))) == "0.3334"
    assert str(to_quantity(Decimal("0.33345"))) == "0.3334"


@pytest.mark.parametrize(
    ("value", "places"),
    [("1", 0), ("1.5", 1), ("1.00", 2), ("0.0001", 4), ("1E+3", 0), ("1E-3", 3), ("NaN", 0)],
)
def test_it_counts_decimal_places_as_written(value, places):
    assert decimal_places(Decimal(value)) == places


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "$0.00"),
        ("1234.5", "$1,234.50"),
        ("1000000000", "$1,000,000,000.00"),
        ("-1234.5", "-$1,234.50"),
        ("0.125", "$0.12"),  # shown rounded the same way it is stored
        ("0.135", "$0.14"),
    ],
)
def test_it_formats_money_in_dollars_with_separators(value, expected):
    assert format_money(Decimal(value)) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10,000", "10000"),
        ("1,000.50", "1000.50"),
        ("999", "999"),
        ("12,345,678.9", "12345678.9"),
    ],
)
def test_a_typed_number_may_group_thousands(raw, expected):
    assert parse_typed_number(raw) == Decimal(expected)


@pytest.mark.parametrize(
    "raw", ["1,00", "10,00,000", "1.000,50", ",100", "1,000,", "1,,000", "1,000.5,0", "１,000"]
)
def test_a_typed_number_refuses_ambiguous_groupings(raw):
    assert parse_typed_number(raw) is None


def test_a_negative_number_is_told_apart_from_nonsense():
    assert is_negative_number("-5") and is_negative_number(" −1,000.50 ")
    assert (
        not is_negative_number("-")
        and not is_negative_number("--5")
        and not is_negative_number("5")
    )
