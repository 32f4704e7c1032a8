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
