"""What a ledger write refuses, each with a message a person can act on.

``field`` names the form field the message belongs beside (``None``: the whole form).
"""

from decimal import Decimal

from portfolios.money import format_money


class LedgerError(Exception):
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field


class InvalidAmount(LedgerError):
    field = "amount"


class InvalidQuantity(LedgerError):
    field = "quantity"


class InvalidTicker(LedgerError):
    field = "ticker"


class InvalidTrigger(LedgerError):
    field = "trigger"


class PriceUnavailable(LedgerError):
    field = "ticker"

    def __init__(self, message: str, *, fetching: bool = False) -> None:
        super().__init__(message)
        self.fetching = fetching  # the price is on its way: the form may poll for it


class InsufficientFunds(LedgerError):
    def __init__(
        self,
        *,
        available: Decimal,
        required: Decimal,
        field: str = "amount",
        reserved: Decimal = Decimal("0"),
    ) -> None:
        self.available = available
        self.required = required
        self.shortfall = required - available
        held_back = (
            f" ({format_money(reserved)} more is reserved for open orders; cancel one to free it)"
            if reserved
            else ""
        )
        super().__init__(
            f"Not enough cash: {format_money(available)} available{held_back}, "
            f"{format_money(required)} required, {format_money(self.shortfall)} short.",
            field=field,
        )


class InsufficientShares(LedgerError):
    field = "quantity"

    def __init__(
        self, *, ticker: str, held: Decimal, requested: Decimal, reserved: Decimal = Decimal("0")
    ) -> None:
        self.held = held
        self.requested = requested
        self.shortfall = requested - held
        if reserved:
            have = (
                f"{held.normalize():f} available ({reserved.normalize():f} more are reserved "
                "for open sell orders)"
            )
        else:
            have = f"{held.normalize():f} held"
        super().__init__(
            f"Not enough {ticker} shares: {have}, {requested.normalize():f} to sell, "
            f"{self.shortfall.normalize():f} short."
        )


class OrderClosed(LedgerError):
    """The order is no longer open: it filled, expired, was rejected or cancelled first."""


class BalanceLimitExceeded(LedgerError):
    field = "amount"
