from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from marketdata.port import Source
from portfolios.money import (
    CASH_MAX_DIGITS,
    CASH_PLACES,
    PRICE_MAX_DIGITS,
    PRICE_PLACES,
    QUANTITY_MAX_DIGITS,
    QUANTITY_PLACES,
    format_money,
    format_price,
    format_shares,
)

ZERO = Decimal("0")


def cash_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=CASH_MAX_DIGITS, decimal_places=CASH_PLACES, **kwargs)


def price_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_PLACES, **kwargs)


def quantity_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(
        max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_PLACES, **kwargs
    )


class PortfolioQuerySet(models.QuerySet):
    def for_user(self, user) -> "PortfolioQuerySet":
        return self.filter(owner=user)


class Portfolio(models.Model):
    """A user's paper account. ``cash``, ``net_contributions`` and ``realized_gain`` are running
    totals of the ledger, changed in the same database transaction as each ledger row (see
    ``services.py``); ``recompute_holdings`` proves they agree with the ledger."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portfolios"
    )
    name = models.CharField(max_length=100)
    cash = cash_field(default=ZERO)
    # Deposits minus withdrawals: what the owner put in, so that deposits never count as gains.
    net_contributions = cash_field(default=ZERO)
    realized_gain = cash_field(default=ZERO)
    created_at = models.DateTimeField(auto_now_add=True)
    # A time-machine portfolio's clock (PRODUCT §10.2): the session it stands at. It only moves
    # forward; trades fill at its close. None: a live portfolio, at today's prices.
    clock = models.DateField(null=True, blank=True)
    # When its latest ledger entry took effect: no entry may take effect before it (the
    # services and, on PostgreSQL, a trigger keep the ledger in time order).
    last_entry_at = models.DateTimeField(null=True, blank=True)
    # How many limit and stop orders it has placed: the page reads no orders when none.
    orders_placed = models.PositiveIntegerField(default=0)

    objects = PortfolioQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="portfolio_unique_name"),
            models.CheckConstraint(condition=Q(cash__gte=0), name="portfolio_cash_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"/portfolios/{self.pk}/"

    @property
    def is_time_machine(self) -> bool:
        return self.clock is not None


class TransactionQuerySet(models.QuerySet):
    def trades(self) -> "TransactionQuerySet":
        return self.filter(kind__in=[Transaction.Kind.BUY, Transaction.Kind.SELL])


class Transaction(models.Model):
    """One row of the append-only ledger. Never edited: a mistake is corrected by a new row."""

    class Kind(models.TextChoices):
        DEPOSIT = "DEPOSIT", "Deposit"
        WITHDRAWAL = "WITHDRAWAL", "Withdrawal"
        BUY = "BUY", "Buy"
        SELL = "SELL", "Sell"
        SPLIT = "SPLIT", "Split"
        DIVIDEND = "DIVIDEND", "Dividend"

    ACTIONS = (Kind.SPLIT, Kind.DIVIDEND)  # corporate actions applied to a position (§2.8)

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="transactions")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    ticker = models.CharField(max_length=10, blank=True)
    quantity = quantity_field(null=True, blank=True)
    price = price_field(null=True, blank=True)
    # Signed: what the row did to the cash balance.
    cash_change = cash_field()
    # Sells only: proceeds minus the average cost of the shares sold.
    realized_gain = cash_field(null=True, blank=True)
    executed_at = models.DateTimeField()
    # Provenance of the price a trade filled at.
    price_source = models.CharField(max_length=20, blank=True)
    price_as_of = models.DateTimeField(null=True, blank=True)
    price_was_stale = models.BooleanField(null=True, blank=True)
    # Corporate actions only: the action's date (a split's effective date, a dividend's
    # ex-date) and its value (the split factor, or the dividend's cash per share). A SPLIT's
    # quantity is the shares it added (negative for a reverse split); a DIVIDEND's the shares it
    # paid on. Their provenance (source, as-of) is the action's.
    effective_on = models.DateField(null=True, blank=True)
    action_value = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    # A waiting order's fill (PRODUCT §11.1): the order, and the rule that fired ("limit,
    # touched"); its bar is the price's source and as-of. One entry per order at most: the
    # column is unique, so an order can never fill twice. DO_NOTHING: the database's own
    # foreign key (checked at commit) refuses to delete an order without its fill, and a
    # portfolio's deletion removes both.
    order = models.OneToOneField(
        "Order", null=True, blank=True, on_delete=models.DO_NOTHING, related_name="fill"
    )
    price_rule = models.CharField(max_length=40, blank=True)

    objects = TransactionQuerySet.as_manager()

    class Meta:
        ordering = ["-executed_at", "-id"]
        indexes = [
            models.Index(fields=["portfolio", "-executed_at", "-id"], name="txn_portfolio_recent"),
        ]
        constraints = [
            models.CheckConstraint(
                name="txn_cash_rows_shape",
                condition=~Q(kind__in=["DEPOSIT", "WITHDRAWAL"])
                | (Q(ticker="") & Q(quantity__isnull=True) & Q(price__isnull=True)),
            ),
            models.CheckConstraint(
                name="txn_deposit_positive",
                condition=~Q(kind="DEPOSIT") | Q(cash_change__gt=0),
            ),
            models.CheckConstraint(
                name="txn_withdrawal_negative",
                condition=~Q(kind="WITHDRAWAL") | Q(cash_change__lt=0),
            ),
            models.CheckConstraint(
                name="txn_trade_shape",
                condition=~Q(kind__in=["BUY", "SELL"])
                | (
                    ~Q(ticker="")
                    & Q(quantity__gt=0)
                    & Q(price__gt=0)
                    & ~Q(price_source="")
                    & Q(price_as_of__isnull=False)
                    & Q(price_was_stale__isnull=False)
                ),
            ),
            models.CheckConstraint(
                name="txn_buy_spends", condition=~Q(kind="BUY") | Q(cash_change__lt=0)
            ),
            models.CheckConstraint(
                name="txn_sell_earns", condition=~Q(kind="SELL") | Q(cash_change__gt=0)
            ),
            models.CheckConstraint(
                name="txn_kind_valid",
                condition=Q(kind__in=["DEPOSIT", "WITHDRAWAL", "BUY", "SELL", "SPLIT", "DIVIDEND"]),
            ),
            models.CheckConstraint(
                name="txn_action_shape",
                condition=~Q(kind__in=["SPLIT", "DIVIDEND"])
                | (
                    ~Q(ticker="")
                    & Q(effective_on__isnull=False)
                    & Q(action_value__gt=0)
                    & Q(quantity__isnull=False)
                    & ~Q(quantity=0)
                    & Q(price__isnull=True)
                    & ~Q(price_source="")
                ),
            ),
            models.CheckConstraint(
                name="txn_order_fills_a_trade",
                condition=Q(order__isnull=True) | Q(kind__in=["BUY", "SELL"]),
            ),
            models.CheckConstraint(
                name="txn_split_moves_no_cash", condition=~Q(kind="SPLIT") | Q(cash_change=0)
            ),
            models.CheckConstraint(
                name="txn_dividend_pays",
                condition=~Q(kind="DIVIDEND") | (Q(cash_change__gt=0) & Q(quantity__gt=0)),
            ),
            # Each action reaches a portfolio once, however often the job runs or races.
            models.UniqueConstraint(
                fields=["portfolio", "kind", "ticker", "effective_on"],
                condition=Q(kind__in=["SPLIT", "DIVIDEND"]),
                name="txn_one_entry_per_action",
            ),
        ]

    def __str__(self) -> str:
        if self.effective_on:
            return f"{self.kind} {self.ticker} {self.action_label} ({self.effective_on})"
        if self.ticker:
            return f"{self.kind} {self.quantity} {self.ticker} @ {self.price}"
        return f"{self.kind} {self.cash_change}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Ledger rows are append-only; record a correcting transaction.")
        super().save(*args, **kwargs)

    @property
    def total(self) -> Decimal:
        return abs(self.cash_change)

    @property
    def action_label(self) -> str:
        """What a corporate action was: "10-for-1 split", "$0.26 a share"."""
        if self.kind == self.Kind.SPLIT:
            new, old = self.action_value.normalize().as_integer_ratio()
            return f"{new}-for-{old} split"
        if self.kind == self.Kind.DIVIDEND:
            return f"${self.action_value.normalize():f} a share"
        return ""

    @property
    def price_source_label(self) -> str:
        return Source.LABELS.get(self.price_source, self.price_source)


class Holding(models.Model):
    """Shares of one ticker held in a portfolio: a running summary of the ledger's trades.

    ``cost_basis`` is what the shares still held cost (average-cost method), in dollars.
    """

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="holdings")
    ticker = models.CharField(max_length=10)
    quantity = quantity_field()
    cost_basis = cash_field()

    class Meta:
        ordering = ["ticker"]
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "ticker"], name="holding_unique_ticker"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="holding_quantity_positive"),
            models.CheckConstraint(
                condition=Q(cost_basis__gte=0), name="holding_cost_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} {self.ticker}"

    @property
    def average_cost(self) -> Decimal:
        from portfolios.money import to_price

        return to_price(self.cost_basis / self.quantity)


class WatchedTicker(models.Model):
    """A ticker on a person's watchlist (PRODUCT §11.3): priced on the watchlist page from the
    cache, and refreshed by the scheduled job after held tickers."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watched"
    )
    ticker = models.CharField(max_length=10)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ticker"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "ticker"], name="watched_once_per_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.owner} watches {self.ticker}"


class Order(models.Model):
    """A limit or stop order that waits for its price (PRODUCT §11). While open it reserves what
    it may spend: a buy its cash (``reserved_cash``), a sell its shares (``reserved_shares``);
    every rule that spends cash or shares counts only what is not reserved. It closes once:
    filled (its ``fill`` is the ledger entry), cancelled, expired or rejected (``reason``)."""

    class Side(models.TextChoices):
        BUY = "BUY", "Buy"
        SELL = "SELL", "Sell"

    class Kind(models.TextChoices):
        LIMIT = "LIMIT", "Limit"
        STOP = "STOP", "Stop"

    class TimeInForce(models.TextChoices):
        DAY = "DAY", "Day"
        GTC = "GTC", "Good till cancelled"

    class Status(models.TextChoices):
        OPEN = "OPEN", "Open"
        FILLED = "FILLED", "Filled"
        CANCELLED = "CANCELLED", "Cancelled"
        EXPIRED = "EXPIRED", "Expired"
        REJECTED = "REJECTED", "Rejected"

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="orders")
    side = models.CharField(max_length=4, choices=Side.choices)
    kind = models.CharField(max_length=5, choices=Kind.choices)
    ticker = models.CharField(max_length=10)
    quantity = quantity_field()
    trigger = price_field()  # the limit or the stop price
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices)
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.OPEN)
    # When it was placed (a time-machine portfolio's: its clock's close): only a bar of a
    # session that starts later can fill it.
    placed_at = models.DateTimeField()
    # The last session whose bar may fill it: a Day order's is the first session that starts
    # after it was placed; a GTC order's, the last one within ``orders.gtc_days`` days.
    expires_on = models.DateField()
    reserved_cash = cash_field(default=ZERO)
    reserved_shares = quantity_field(default=ZERO)
    closed_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)  # why it expired or was rejected

    class Meta:
        ordering = ["-placed_at", "-id"]
        indexes = [
            models.Index(
                fields=["ticker"], condition=Q(status="OPEN"), name="order_open_by_ticker"
            ),
            models.Index(fields=["portfolio", "-placed_at", "-id"], name="order_portfolio_recent"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(condition=Q(trigger__gt=0), name="order_trigger_positive"),
            models.CheckConstraint(name="order_side_valid", condition=Q(side__in=["BUY", "SELL"])),
            models.CheckConstraint(
                name="order_kind_valid", condition=Q(kind__in=["LIMIT", "STOP"])
            ),
            models.CheckConstraint(
                name="order_tif_valid", condition=Q(time_in_force__in=["DAY", "GTC"])
            ),
            # A buy reserves cash and no shares; a sell, shares and no cash.
            models.CheckConstraint(
                name="order_reserve_shape",
                condition=(Q(side="BUY") & Q(reserved_cash__gt=0) & Q(reserved_shares=0))
                | (Q(side="SELL") & Q(reserved_cash=0) & Q(reserved_shares__gt=0)),
            ),
            models.CheckConstraint(
                name="order_closed_when_not_open",
                condition=(Q(status="OPEN") & Q(closed_at__isnull=True))
                | (~Q(status="OPEN") & Q(closed_at__isnull=False)),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.ticker} {self.kind} {self.trigger}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    @property
    def reserve_label(self) -> str:
        """What it holds back while open: "$1,500.00", or "10 AAPL"."""
        if self.side == self.Side.BUY:
            return format_money(self.reserved_cash)
        return f"{format_shares(self.reserved_shares)} {self.ticker}"

    @property
    def label(self) -> str:
        """What it is, in a line: "Buy 10 AAPL, limit $150.00, Day"."""
        return (
            f"{self.get_side_display()} {self.quantity.normalize():f} {self.ticker}, "
            f"{self.get_kind_display().lower()} {format_price(self.trigger)}, "
            f"{'Day' if self.time_in_force == self.TimeInForce.DAY else 'GTC'}"
        )
