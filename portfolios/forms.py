"""Forms check the shape of input; the services check the rules (and are the only writers)."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib.auth.forms import UserCreationForm

from marketdata.port import TICKER_MAX_LENGTH
from portfolios.money import (
    CASH_PLACES,
    PRICE_PLACES,
    QUANTITY_PLACES,
    is_negative_number,
    parse_typed_number,
)
from portfolios.services import NAME_MAX_LENGTH


class PlainDecimalField(forms.CharField):
    """A positive decimal typed as digits, commas between thousands and one optional point: no
    signs, exponents, other separators, NaN or Infinity, and at most ``places`` decimals."""

    def __init__(self, *, places: int, noun: str, example: str, **kwargs) -> None:
        self.places = places
        self.noun = noun
        self.example = example
        super().__init__(**kwargs)

    MAX_LENGTH = 32

    def widget_attrs(self, widget):
        attrs = super().widget_attrs(widget)
        attrs.update(
            {
                "inputmode": "decimal",
                "autocomplete": "off",
                "placeholder": self.example,
                "maxlength": str(self.MAX_LENGTH),
            }
        )
        return attrs

    def to_python(self, value) -> Decimal | None:
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        if len(text) > self.MAX_LENGTH:
            raise forms.ValidationError(
                f"The {self.noun} is too long to be a number we accept.", code="max_length"
            )
        if is_negative_number(text):
            raise forms.ValidationError(
                f"The {self.noun} must be greater than zero.", code="min_value"
            )
        number = parse_typed_number(text)
        if number is None:
            raise forms.ValidationError(
                f"Enter the {self.noun} as a plain number like {self.example}: digits, commas "
                "only between thousands, at most one decimal point, no signs or exponents.",
                code="invalid",
            )
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > self.places:
            raise forms.ValidationError(
                f"The {self.noun} may have at most {self.places} decimal places.", code="places"
            )
        if number <= 0:
            raise forms.ValidationError(
                f"The {self.noun} must be greater than zero.", code="min_value"
            )
        return number


def amount_field(**kwargs) -> PlainDecimalField:
    return PlainDecimalField(places=CASH_PLACES, noun="amount", example="1,000.00", **kwargs)


def quantity_field(**kwargs) -> PlainDecimalField:
    return PlainDecimalField(places=QUANTITY_PLACES, noun="quantity", example="10", **kwargs)


OPENING_DEPOSIT = "10000.00"  # a new portfolio's default opening cash: a value, not a hint


class SignupForm(UserCreationForm):
    pass


class PortfolioCreateForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_LENGTH, strip=True)
    opening_deposit = amount_field(
        required=False, label="Opening deposit (optional)", initial=OPENING_DEPOSIT
    )
    starts_on = forms.DateField(
        required=False,
        label="Start in the past (optional)",
        help_text="A time machine: the portfolio starts on this day of the stored history, "
        "trades at that day's closes, and you move its clock forward.",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter the start date as YYYY-MM-DD."},
    )

    def bound_to(self, stored: tuple | None) -> PortfolioCreateForm:
        """Bound the date picker by the stored history (first and last session)."""
        if stored:
            first, last = stored
            self.fields["starts_on"].widget.attrs.update(
                {"min": first.isoformat(), "max": last.isoformat()}
            )
        return self


class ClockForm(forms.Form):
    """Move a time-machine portfolio's clock: a step, or a date."""

    step = forms.ChoiceField(
        choices=[("day", "Next day"), ("week", "Next week"), ("month", "Next month")],
        required=False,
    )
    to = forms.DateField(
        required=False,
        label="Go to date",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter the date as YYYY-MM-DD."},
    )

    def clean(self):
        data = super().clean()
        if not data.get("step") and not data.get("to") and not self.errors:
            raise forms.ValidationError("Pick a date to go to, or a step.")
        return data


class PortfolioRenameForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_LENGTH, strip=True, label="New name")


class CashForm(forms.Form):
    amount = amount_field(label="Amount ($)")

    def __init__(self, *args, label: str = "Amount ($)", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = label


def price_field(noun: str, **kwargs) -> PlainDecimalField:
    return PlainDecimalField(places=PRICE_PLACES, noun=noun, example="150.00", **kwargs)


class TradeForm(forms.Form):
    SIDES = [("BUY", "Buy"), ("SELL", "Sell")]
    ORDER_TYPES = [("MARKET", "Market"), ("LIMIT", "Limit"), ("STOP", "Stop")]
    TIMES_IN_FORCE = [("DAY", "Day"), ("GTC", "GTC (good till cancelled)")]

    side = forms.ChoiceField(choices=SIDES, initial="BUY")
    ticker = forms.CharField(
        max_length=TICKER_MAX_LENGTH,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "placeholder": "AAPL",
                "list": "ticker-options",
            }
        ),
        error_messages={"max_length": f"A ticker has at most {TICKER_MAX_LENGTH} characters."},
    )
    quantity = quantity_field(label="Quantity (shares)")
    order_type = forms.ChoiceField(
        choices=ORDER_TYPES, initial="MARKET", label="Order type", required=False
    )
    limit_price = price_field("limit price", label="Limit price ($)", required=False)
    stop_price = price_field("stop price", label="Stop price ($)", required=False)
    time_in_force = forms.ChoiceField(
        choices=TIMES_IN_FORCE, initial="DAY", label="Time in force", required=False
    )

    def clean(self):
        data = super().clean()
        kind = data["order_type"] = data.get("order_type") or "MARKET"
        # Only the price the order type uses counts: a stray value in the other is ignored.
        for name, used_by in (("limit_price", "LIMIT"), ("stop_price", "STOP")):
            if kind != used_by:
                self.errors.pop(name, None)
                data[name] = None
        if kind == "LIMIT" and data.get("limit_price") is None and "limit_price" not in self.errors:
            self.add_error(
                "limit_price", "Give the limit price: the most a buy pays, the least a sell takes."
            )
        if kind == "STOP" and data.get("stop_price") is None and "stop_price" not in self.errors:
            self.add_error("stop_price", "Give the stop price: the price that sets the order off.")
        data["trigger"] = data.get("limit_price") if kind == "LIMIT" else data.get("stop_price")
        data["time_in_force"] = data.get("time_in_force") or "DAY"
        return data


class PreviewForm(TradeForm):
    """The trade form as typed so far; nothing is required."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for f in self.fields.values():
            f.required = False

    def clean(self):
        data = forms.Form.clean(self)
        kind = data.get("order_type")
        data["trigger"] = data.get("limit_price") if kind == "LIMIT" else data.get("stop_price")
        return data
