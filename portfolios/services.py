"""Ledger writes: keyword-only services shared by views, commands and tasks.

Every write validates its inputs, takes the price (if any) *before* opening the database
transaction (no network I/O inside one), then inside ``transaction.atomic()`` locks the
portfolio row, checks the rule against the locked balance, appends the ledger row and updates
the running totals. A broken rule raises a :class:`LedgerError` and writes nothing.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Case, Count, DecimalField, F, Min, Q, Sum, When
from django.utils import timezone

from marketdata.port import (
    CorporateActionPoint,
    MarketDataPort,
    MarketDataUnavailable,
    NoStoredPrices,
    PriceFetching,
    PricePoint,
    TickerNotFound,
    close_of,
    day_start,
    get_price_port,
    normalize_ticker,
    session_date,
)
from marketdata.port import InvalidTicker as _BadTicker
from portfolios.exceptions import (
    BalanceLimitExceeded,
    InsufficientFunds,
    InsufficientShares,
    InvalidAmount,
    InvalidQuantity,
    InvalidTicker,
    LedgerError,
    PriceUnavailable,
)
from portfolios.models import Holding, Order, Portfolio, Transaction
from portfolios.money import (
    CASH_PLACES,
    MAX_AMOUNT,
    MAX_CASH,
    MAX_QUANTITY,
    QUANTITY_PLACES,
    decimal_places,
    format_money,
    to_cash,
    to_quantity,
)

ZERO = Decimal("0")
NAME_MAX_LENGTH = 100


# --- validation -------------------------------------------------------------------------------
def _check_decimal(value: object, *, what: str, places: int, maximum: Decimal, error) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise error(f"The {what} must be a number.")
    if value <= 0:
        raise error(f"The {what} must be greater than zero.")
    if decimal_places(value) > places:
        raise error(f"The {what} may have at most {places} decimal places.")
    if value > maximum:
        raise error(f"The {what} may be at most {maximum.normalize():,f}.")
    return value


def validate_amount(value: object) -> Decimal:
    return _check_decimal(
        value, what="amount", places=CASH_PLACES, maximum=MAX_AMOUNT, error=InvalidAmount
    )


def validate_quantity(value: object) -> Decimal:
    return _check_decimal(
        value, what="quantity", places=QUANTITY_PLACES, maximum=MAX_QUANTITY, error=InvalidQuantity
    )


def validate_ticker(value: object) -> str:
    try:
        return normalize_ticker(value)
    except _BadTicker as exc:
        raise InvalidTicker(str(exc)) from None


def validate_name(value: object) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise LedgerError("Give the portfolio a name.", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise LedgerError(
            f"A portfolio name has at most {NAME_MAX_LENGTH} characters.", field="name"
        )
    if not name.isprintable():
        raise LedgerError("A portfolio name cannot contain control characters.", field="name")
    return name


def _locked(portfolio: Portfolio) -> Portfolio:
    """Re-read ``portfolio`` with its row locked until the transaction ends."""
    return Portfolio.objects.select_for_update().get(pk=portfolio.pk)


def _refresh(portfolio: Portfolio, locked: Portfolio) -> None:
    for name in (
        "cash",
        "net_contributions",
        "realized_gain",
        "clock",
        "last_entry_at",
        "orders_placed",
    ):
        setattr(portfolio, name, getattr(locked, name))


def _same_clock(portfolio: Portfolio, locked: Portfolio) -> None:
    """A trade priced at one clock's close must not fill after the clock moved on."""
    if portfolio.clock != locked.clock:
        raise LedgerError(
            f"The portfolio's clock moved to {locked.clock:%a %-d %b %Y} while this order was "
            "being placed; place it again at that day's price."
        )


def _entry_time(locked: Portfolio) -> datetime:
    """When an entry made now (under the lock) takes effect: on a time-machine portfolio, its
    clock's close; on a live one, now. Never before the latest entry (a machine whose clock is
    behind another's writes at that entry's time), so the ledger stays in time order."""
    at = close_of(locked.clock) if locked.clock is not None else timezone.now()
    if locked.last_entry_at is not None and at < locked.last_entry_at:
        at = locked.last_entry_at
    return at


def _save_totals(locked: Portfolio, entry: Transaction, *names: str) -> None:
    """Save the running totals ``names`` and the time of ``entry``, the latest one."""
    locked.last_entry_at = entry.executed_at
    locked.save(update_fields=[*names, "last_entry_at"])


@dataclass(frozen=True)
class Reserves:
    """What a portfolio's open orders hold back (PRODUCT §11.2): cash for buys, shares of each
    ticker for sells. Read under the portfolio's lock, so what a rule counts as available is
    what no open order can take."""

    cash: Decimal = ZERO
    shares: dict[str, Decimal] | None = None
    orders: int = 0  # how many are open

    def shares_of(self, ticker: str) -> Decimal:
        return (self.shares or {}).get(ticker, ZERO)


def reserves_of(portfolio: Portfolio) -> Reserves:
    """The reserves of ``portfolio``'s open orders, in one query; none (and no query) when it
    never placed an order (``orders_placed``, read with the locked row)."""
    if not portfolio.orders_placed:
        return Reserves()
    cash, shares, orders = ZERO, {}, 0
    rows = (
        Order.objects.filter(portfolio=portfolio, status=Order.Status.OPEN)
        .order_by()
        .values_list("ticker")
        .annotate(cash=Sum("reserved_cash"), shares=Sum("reserved_shares"), count=Count("pk"))
    )
    for ticker, reserved_cash, reserved_shares, count in rows:
        cash += reserved_cash
        orders += count
        if reserved_shares:
            shares[ticker] = reserved_shares
    return Reserves(cash=cash, shares=shares, orders=orders)


def held_quantity(portfolio: Portfolio, ticker: str) -> Decimal:
    """The shares of ``ticker`` the portfolio holds (0 when none), in one query."""
    found = (
        Holding.objects.filter(portfolio=portfolio, ticker=ticker)
        .values_list("quantity", flat=True)
        .first()
    )
    return found or ZERO


def _check_cash(locked: Portfolio, required: Decimal, reserves: Reserves, field: str) -> None:
    available = locked.cash - reserves.cash
    if required > available:
        raise InsufficientFunds(
            available=available, required=required, reserved=reserves.cash, field=field
        )


def _check_shares(ticker: str, held: Decimal, requested: Decimal, reserves: Reserves) -> None:
    reserved = min(reserves.shares_of(ticker), held)
    if requested > held - reserved:
        raise InsufficientShares(
            ticker=ticker, held=held - reserved, requested=requested, reserved=reserved
        )


# --- portfolios -------------------------------------------------------------------------------
def portfolio_create(
    *,
    owner,
    name: str,
    opening_deposit: Decimal | None = None,
    starts_on: date | None = None,
    prices: MarketDataPort | None = None,
) -> Portfolio:
    """A new portfolio: live, or with ``starts_on`` a time machine whose clock starts at that
    session (the first stored session on or after it)."""
    name = validate_name(name)
    if opening_deposit is not None:
        validate_amount(opening_deposit)
    clock = _first_clock(starts_on, prices) if starts_on is not None else None
    if Portfolio.objects.filter(owner=owner, name=name).exists():
        raise LedgerError(f"You already have a portfolio named “{name}”.", field="name")
    try:
        with transaction.atomic():
            portfolio = Portfolio.objects.create(owner=owner, name=name, clock=clock)
            if opening_deposit is not None:
                portfolio_deposit(portfolio=portfolio, amount=opening_deposit)
    except IntegrityError:
        raise LedgerError(f"You already have a portfolio named “{name}”.", field="name") from None
    return portfolio


# --- the time machine (PRODUCT §10.2) ----------------------------------------------------------
def _stored_bounds(prices: MarketDataPort | None) -> tuple[date, date]:
    found = (prices or get_price_port()).stored_range()
    if found is None:
        raise LedgerError("No prices are stored yet, so there is no past to start in.")
    return found


def _first_clock(starts_on: date, prices: MarketDataPort | None) -> date:
    first, last = _stored_bounds(prices)
    if not first <= starts_on <= last:
        raise LedgerError(
            f"Pick a start date between {first:%a %-d %b %Y} and {last:%a %-d %b %Y}: the "
            "prices stored run from the one to the other.",
            field="starts_on",
        )
    sessions = (prices or get_price_port()).sessions(starts_on, last)
    if not sessions:
        raise LedgerError(f"No market session from {starts_on:%-d %b %Y} on.", field="starts_on")
    return sessions[0]


CLOCK_STEPS = ("day", "week", "month")


def clock_target(clock: date, step: str, *, prices: MarketDataPort | None = None) -> date:
    """Where "Next day", "Next week" or "Next month" takes a clock: the next session, or the
    first session on or after a week or a calendar month later."""
    port = prices or get_price_port()
    if step == "day":
        following = port.sessions(clock + timedelta(days=1), clock + timedelta(days=10))
        return following[0] if following else clock + timedelta(days=1)
    if step == "week":
        return clock + timedelta(days=7)
    if step == "month":
        year, month = divmod(clock.year * 12 + clock.month, 12)
        last_day = calendar.monthrange(year, month + 1)[1]
        return date(year, month + 1, min(clock.day, last_day))
    raise LedgerError(f"Unknown step {step!r}: day, week or month.")


def portfolio_advance(
    *, portfolio: Portfolio, to: date, prices: MarketDataPort | None = None
) -> Portfolio:
    """Move a time-machine portfolio's clock forward to the session ``to`` (or the last
    session before it), never back and never past the latest stored session; the open orders
    are checked against the sessions it crosses, and the splits and dividends it crosses apply
    on the way. Locks the portfolio row, like a trade."""
    if portfolio.clock is None:
        raise LedgerError("This portfolio is live: it has no clock to move.")
    port = prices or get_price_port()
    first, last = _stored_bounds(port)
    with transaction.atomic():
        locked = _locked(portfolio)
        if to <= locked.clock:
            raise LedgerError(
                f"The clock only moves forward: it is at {locked.clock:%a %-d %b %Y}; pick a "
                "later date.",
                field="to",
            )
        if to > last:
            raise LedgerError(
                f"The latest stored session is {last:%a %-d %b %Y}: the clock cannot go past "
                f"it (asked for {to:%a %-d %b %Y}).",
                field="to",
            )
        sessions = port.sessions(locked.clock + timedelta(days=1), to)
        if not sessions:
            raise LedgerError(
                f"There is no market session after {locked.clock:%a %-d %b %Y} up to "
                f"{to:%a %-d %b %Y}; pick a later date.",
                field="to",
            )
        locked.clock = sessions[-1]
        locked.save(update_fields=["clock"])
        # The open orders meet the bars of the sessions crossed (fills in session order, each at
        # its session's close), then the splits and dividends of those sessions apply.
        from portfolios.orders import check_locked

        check_locked(locked, port=port, now=timezone.now())
        apply_corporate_actions(portfolio=locked, prices=port, today=locked.clock)
        locked.refresh_from_db()
    _refresh(portfolio, locked)
    return portfolio


def portfolio_rename(*, portfolio: Portfolio, name: str) -> Portfolio:
    name = validate_name(name)
    clash = Portfolio.objects.filter(owner_id=portfolio.owner_id, name=name).exclude(
        pk=portfolio.pk
    )
    if clash.exists():
        raise LedgerError(f"You already have a portfolio named “{name}”.", field="name")
    try:
        with transaction.atomic():
            Portfolio.objects.filter(pk=portfolio.pk).update(name=name)
    except IntegrityError:
        raise LedgerError(f"You already have a portfolio named “{name}”.", field="name") from None
    portfolio.name = name
    return portfolio


def portfolio_delete(*, portfolio: Portfolio) -> None:
    portfolio.delete()


# --- cash -------------------------------------------------------------------------------------
def portfolio_deposit(*, portfolio: Portfolio, amount: Decimal) -> Transaction:
    amount = validate_amount(amount)
    with transaction.atomic():
        # Lock: two deposits racing would each add to the balance they read and lose one.
        locked = _locked(portfolio)
        now = _entry_time(locked)  # after the lock, so the ledger's time order is its lock order
        if locked.cash + amount > MAX_CASH:
            raise BalanceLimitExceeded(
                f"A balance may be at most {format_money(MAX_CASH)}; this deposit would make it "
                f"{format_money(locked.cash + amount)}."
            )
        txn = Transaction.objects.create(
            portfolio=locked, kind=Transaction.Kind.DEPOSIT, cash_change=amount, executed_at=now
        )
        locked.cash += amount
        locked.net_contributions += amount
        _save_totals(locked, txn, "cash", "net_contributions")
    _refresh(portfolio, locked)
    return txn


def portfolio_withdraw(*, portfolio: Portfolio, amount: Decimal) -> Transaction:
    amount = validate_amount(amount)
    with transaction.atomic():
        # Lock: two withdrawals racing could each see enough cash and together overdraw it.
        locked = _locked(portfolio)
        now = _entry_time(locked)
        _check_cash(locked, amount, reserves_of(locked), "amount")  # open buys' cash is held
        txn = Transaction.objects.create(
            portfolio=locked,
            kind=Transaction.Kind.WITHDRAWAL,
            cash_change=-amount,
            executed_at=now,
        )
        locked.cash -= amount
        locked.net_contributions -= amount
        _save_totals(locked, txn, "cash", "net_contributions")
    _refresh(portfolio, locked)
    return txn


# --- trades -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Quote:
    """What a trade would cost right now: shown as a preview and on the receipt."""

    ticker: str
    quantity: Decimal
    price: PricePoint
    total: Decimal


def _no_price_available(ticker: str, exc: NoStoredPrices) -> str:
    if exc.can_fetch:
        return f"No price is available for {ticker} right now; try again in a moment."
    return (
        f"No price is available for {ticker} right now: none is stored, and without an API "
        "key none can be fetched."
    )


def _fill_price(ticker: str, prices: MarketDataPort | None, stored_only: bool) -> PricePoint:
    port = prices or get_price_port()
    try:
        if stored_only:
            # A preview as the person types must not spend quota: stored prices only.
            point = port.get_current_prices([ticker])[ticker]
            if isinstance(point, NoStoredPrices) and point.can_fetch:
                raise PriceUnavailable(
                    f"No price is stored for {ticker} yet; placing the order fetches one."
                )
            if not isinstance(point, PricePoint):
                raise point
            return point
        point = port.get_current_price(ticker)
    except NoStoredPrices as exc:
        # Nothing stored and nothing to fetch it with: that says nothing about the ticker.
        raise PriceUnavailable(_no_price_available(ticker, exc)) from None
    except TickerNotFound:  # the provider said it has no such ticker
        raise InvalidTicker(f"{ticker} is not a ticker we know.") from None
    except PriceFetching:
        then = "it shows here in a moment" if stored_only else "place the order again in a moment"
        raise PriceUnavailable(
            f"The price of {ticker} is being fetched; {then}.", fetching=True
        ) from None
    except MarketDataUnavailable as exc:
        raise PriceUnavailable(f"No price for {ticker} right now: {exc}") from None
    if point.pending:
        # Never fill at the old price while the new one is on its way.
        raise PriceUnavailable(
            f"A newer price of {ticker} is being fetched; place the order again in a moment.",
            fetching=True,
        )
    return point


def _price_at_clock(ticker: str, clock: date, prices: MarketDataPort | None) -> PricePoint:
    """A time-machine fill: the close of the clock's session (the last stored bar at or before
    it), from stored bars only: a time-machine portfolio never spends quota on a trade."""
    port = prices or get_price_port()
    try:
        return port.get_price_at(ticker, close_of(clock))
    except TickerNotFound:
        raise PriceUnavailable(
            f"No price of {ticker} is stored: it cannot be traded in the past."
        ) from None
    except MarketDataUnavailable as exc:  # the clock is before its first stored bar
        raise PriceUnavailable(str(exc)) from None


def trade_quote(
    *,
    ticker: str,
    quantity: Decimal,
    prices: MarketDataPort | None = None,
    stored_only: bool = False,
    clock: date | None = None,
) -> Quote:
    """Validate a trade's inputs and price it at the current price (server-side, never the
    browser's): the freshest price the port has, fetched if need be. ``stored_only`` prices a
    preview from stored prices without spending any quota. With a ``clock`` (a time-machine
    portfolio's), at that session's close."""
    ticker = validate_ticker(ticker)
    quantity = validate_quantity(quantity)
    if clock is not None:
        point = _price_at_clock(ticker, clock, prices)
    else:
        point = _fill_price(ticker, prices, stored_only)
    total = to_cash(quantity * point.price)
    if total <= 0:
        raise InvalidQuantity(
            f"{quantity.normalize():f} {ticker} at {format_money(point.price)} comes to "
            "less than a cent; trade a larger quantity."
        )
    if total > MAX_AMOUNT:
        raise InvalidQuantity(f"One trade may move at most {format_money(MAX_AMOUNT)}.")
    return Quote(ticker=ticker, quantity=quantity, price=point, total=total)


def _trade_row(
    portfolio: Portfolio,
    kind: str,
    quote: Quote,
    cash_change: Decimal,
    now: datetime,
    realized_gain: Decimal | None = None,
    *,
    order: Order | None = None,
    rule: str = "",
) -> Transaction:
    point = quote.price
    return Transaction.objects.create(
        order=order,
        price_rule=rule,
        portfolio=portfolio,
        kind=kind,
        ticker=quote.ticker,
        quantity=quote.quantity,
        price=point.price,
        cash_change=cash_change,
        realized_gain=realized_gain,
        executed_at=now,
        price_source=point.source,
        price_as_of=point.as_of,
        price_was_stale=point.is_stale,
    )


def portfolio_buy(
    *, portfolio: Portfolio, ticker: str, quantity: Decimal, prices: MarketDataPort | None = None
) -> Transaction:
    quote = trade_quote(ticker=ticker, quantity=quantity, prices=prices, clock=portfolio.clock)
    with transaction.atomic():
        # Lock: two buys racing could each see enough cash and together overdraw it.
        locked = _locked(portfolio)
        _same_clock(portfolio, locked)
        now = _entry_time(locked)
        _check_cash(locked, quote.total, reserves_of(locked), "quantity")
        txn = book_buy(locked, quote, now)
    _refresh(portfolio, locked)
    return txn


def book_buy(
    locked: Portfolio, quote: Quote, now: datetime, *, order: Order | None = None, rule: str = ""
) -> Transaction:
    """Append a BUY of ``quote`` to the locked portfolio and update its cash and holding (the
    caller has checked the cash)."""
    txn = _trade_row(locked, Transaction.Kind.BUY, quote, -quote.total, now, order=order, rule=rule)
    holding = Holding.objects.filter(portfolio=locked, ticker=quote.ticker).first()
    if holding is None:
        holding = Holding(portfolio=locked, ticker=quote.ticker, quantity=ZERO, cost_basis=ZERO)
    if holding.quantity + quote.quantity > MAX_QUANTITY:
        raise InvalidQuantity(f"A holding may be at most {MAX_QUANTITY.normalize():,f} shares.")
    holding.quantity += quote.quantity
    holding.cost_basis += quote.total
    holding.save()
    locked.cash -= quote.total
    _save_totals(locked, txn, "cash")
    return txn


def portfolio_sell(
    *, portfolio: Portfolio, ticker: str, quantity: Decimal, prices: MarketDataPort | None = None
) -> Transaction:
    ticker = validate_ticker(ticker)
    quantity = validate_quantity(quantity)
    held = Holding.objects.filter(portfolio=portfolio, ticker=ticker).first()
    if held is None or held.quantity < quantity:
        # Checked again under the lock below; this early answer spares a price lookup.
        raise InsufficientShares(
            ticker=ticker, held=held.quantity if held else ZERO, requested=quantity
        )
    quote = trade_quote(ticker=ticker, quantity=quantity, prices=prices, clock=portfolio.clock)
    with transaction.atomic():
        # Lock: two sells racing could each see the shares and together oversell them.
        locked = _locked(portfolio)
        _same_clock(portfolio, locked)
        now = _entry_time(locked)
        holding = Holding.objects.filter(portfolio=locked, ticker=ticker).first()
        _check_shares(ticker, holding.quantity if holding else ZERO, quantity, reserves_of(locked))
        txn = book_sell(locked, holding, quote, now)
    _refresh(portfolio, locked)
    return txn


def book_sell(
    locked: Portfolio,
    holding: Holding,
    quote: Quote,
    now: datetime,
    *,
    order: Order | None = None,
    rule: str = "",
) -> Transaction:
    """Append a SELL of ``quote`` from ``holding`` (the caller has checked the shares) and
    update the cash, the realized gain and the holding (average cost)."""
    quantity = quote.quantity
    if holding.quantity == quantity:
        cost_sold = holding.cost_basis
    else:
        cost_sold = to_cash(holding.cost_basis * quantity / holding.quantity)
    gain = quote.total - cost_sold
    if locked.cash + quote.total > MAX_CASH:
        raise BalanceLimitExceeded(
            f"A balance may be at most {format_money(MAX_CASH)}.", field="quantity"
        )
    txn = _trade_row(
        locked, Transaction.Kind.SELL, quote, quote.total, now, gain, order=order, rule=rule
    )
    if holding.quantity == quantity:
        # A position sold to zero leaves the holdings table.
        holding.delete()
    else:
        holding.quantity -= quantity
        holding.cost_basis -= cost_sold
        holding.save(update_fields=["quantity", "cost_basis"])
    locked.cash += quote.total
    locked.realized_gain += gain
    _save_totals(locked, txn, "cash", "realized_gain")
    return txn


# --- corporate actions (PRODUCT §2.8) ---------------------------------------------------------
@dataclass(frozen=True)
class AppliedActions:
    splits: int = 0
    dividends: int = 0

    def __str__(self) -> str:
        return f"{self.splits} split entries and {self.dividends} dividend entries appended"


def apply_corporate_actions(
    *,
    tickers: Iterable[str] | None = None,
    prices: MarketDataPort | None = None,
    today=None,
    portfolio: Portfolio | None = None,
) -> AppliedActions:
    """Append the ``SPLIT`` and ``DIVIDEND`` entries that the recorded actions owe positions.

    An action reaches every portfolio that held its ticker when it took effect: the shares of
    the trades filled at prices of sessions *before* its date (a split's effective date, a
    dividend's ex-date; a buy on the ex-date gets nothing), with earlier splits' shares. A split
    adds ``held × factor − held`` shares (rounded half-even to 4 places) and leaves the cash and
    the cost basis alone, so the average cost divides by the factor and value and gains run on
    unbroken. A dividend is credited on its pay date (its ex-date when none is known), to the
    cent, half-even: ``held × amount``. Idempotent: each (portfolio, action) has at most one
    entry, enforced by the database; each is written under the portfolio's row lock, like a
    trade, so a trade racing it is ordered before or after it, never in between.

    A time-machine portfolio gets an action only once its clock has reached the action's date
    (a dividend's pay date): its entries take effect at the start of that day, so moving the
    clock across an action applies it in time order. ``portfolio`` limits the run to one.
    """
    port = prices or get_price_port()
    traded = Transaction.objects.filter(kind=Transaction.Kind.BUY)
    if portfolio is not None:
        traded = traded.filter(portfolio=portfolio)
    if tickers is not None:
        traded = traded.filter(ticker__in=list(tickers))
    # Each ticker ever bought, with the session of its first fill: an action dated on or before
    # it reached nobody (IBM's dividends since 1999 are not looked at for a buy made today).
    first_fill = {
        ticker: session_date(first)
        for ticker, first in traded.values_list("ticker").annotate(first=Min("price_as_of"))
    }
    if not first_fill:
        return AppliedActions()
    today = today or session_date(timezone.now())
    splits = dividends = 0
    since = min(first_fill.values())
    for action in port.get_corporate_actions(sorted(first_fill), since=since):
        if action.date <= first_fill[action.ticker] or action.date > today:
            continue
        if not action.is_split and action.payable_on > today:
            continue
        kind = Transaction.Kind.SPLIT if action.is_split else Transaction.Kind.DIVIDEND
        held_then = traded.filter(ticker=action.ticker, price_as_of__lt=day_start(action.date))
        done = Transaction.objects.filter(kind=kind, ticker=action.ticker, effective_on=action.date)
        owed = set(held_then.values_list("portfolio_id", flat=True).distinct()) - set(
            done.values_list("portfolio_id", flat=True)
        )
        for portfolio_id in sorted(owed):
            if _apply_action(portfolio_id, action, kind, today) is not None:
                splits += action.is_split
                dividends += not action.is_split
    return AppliedActions(splits=splits, dividends=dividends)


def _held_before(portfolio: Portfolio, ticker: str, day) -> Decimal:
    """Shares of ``ticker`` held at the close before ``day``, as the ledger says."""
    signed = Case(
        When(kind=Transaction.Kind.SELL, then=-F("quantity")),
        default=F("quantity"),
        output_field=DecimalField(),
    )
    found = (
        Transaction.objects.filter(portfolio=portfolio, ticker=ticker)
        .filter(
            Q(
                kind__in=[Transaction.Kind.BUY, Transaction.Kind.SELL],
                price_as_of__lt=day_start(day),
            )
            | Q(kind=Transaction.Kind.SPLIT, effective_on__lt=day)
        )
        .aggregate(held=Sum(signed))["held"]
    )
    return found or ZERO


def _apply_action(
    portfolio_id: int, action: CorporateActionPoint, kind: str, today: date
) -> Transaction | None:
    with transaction.atomic():
        locked = Portfolio.objects.select_for_update().get(pk=portfolio_id)
        due = action.date if action.is_split else action.payable_on
        if locked.clock is not None and due > locked.clock:
            return None  # the time machine has not got there yet
        done = locked.transactions.filter(kind=kind, ticker=action.ticker, effective_on=action.date)
        if done.exists():
            return None  # applied by a run that came first
        held = _held_before(locked, action.ticker, action.date)
        if held <= 0:
            return None
        at = _entry_time(locked)
        if locked.clock is not None:  # at the start of its day, if the ledger allows
            at = max(day_start(due), locked.last_entry_at or day_start(due))
        row = {
            "portfolio": locked,
            "kind": kind,
            "ticker": action.ticker,
            "executed_at": at,
            "price_source": action.source,
            "price_as_of": close_of(action.date),
            "price_was_stale": False,
            "effective_on": action.date,
            "action_value": action.value,
        }
        if action.is_split:
            added = to_quantity(held * action.value) - held
            if not added:
                return None
            entry = Transaction.objects.create(quantity=added, cash_change=ZERO, **row)
            _save_totals(locked, entry)
            holding = Holding.objects.filter(portfolio=locked, ticker=action.ticker).first()
            if holding is None:  # sold since: what was sold was the old shares' count
                holding = Holding(portfolio=locked, ticker=action.ticker, quantity=ZERO)
                holding.cost_basis = ZERO
            holding.quantity += added
            if holding.quantity > 0:
                holding.save()
            elif holding.pk is not None:
                holding.delete()
            return entry
        credit = to_cash(held * action.value)
        if credit <= 0:
            return None
        entry = Transaction.objects.create(
            quantity=held, cash_change=credit, realized_gain=credit, **row
        )
        locked.cash += credit
        locked.realized_gain += credit
        _save_totals(locked, entry, "cash", "realized_gain")
        return entry


# --- the ledger replayed ----------------------------------------------------------------------
@dataclass
class LedgerState:
    """A portfolio's running totals as the ledger alone says they are."""

    cash: Decimal = ZERO
    net_contributions: Decimal = ZERO
    realized_gain: Decimal = ZERO
    holdings: dict[str, tuple[Decimal, Decimal]] | None = None  # ticker -> (quantity, cost)


def ledger_replay(*, portfolio: Portfolio) -> LedgerState:
    """Recompute cash, contributions, realized gain and holdings from the ledger, oldest first,
    with the same average-cost arithmetic as the trade services."""
    state = LedgerState(holdings={})
    # In time order (then id order, for entries of one moment): the services write every entry
    # under the portfolio lock at or after the latest one's time (``_entry_time``), so this is
    # also the order they were applied in, on live and time-machine portfolios alike.
    rows = portfolio.transactions.order_by("executed_at", "id").values_list(
        "kind", "ticker", "quantity", "cash_change"
    )
    for kind, ticker, quantity, cash_change in rows.iterator(chunk_size=2000):
        state.cash += cash_change
        if kind in (Transaction.Kind.DEPOSIT, Transaction.Kind.WITHDRAWAL):
            state.net_contributions += cash_change
            continue
        if kind == Transaction.Kind.DIVIDEND:  # income: cash, and a realized gain
            state.realized_gain += cash_change
            continue
        held, cost = state.holdings.get(ticker, (ZERO, ZERO))
        if kind == Transaction.Kind.SPLIT:  # more (or fewer) shares, the same cost
            held += quantity
        elif kind == Transaction.Kind.BUY:
            held, cost = held + quantity, cost - cash_change
        else:
            sold_cost = cost if quantity == held else to_cash(cost * quantity / held)
            state.realized_gain += cash_change - sold_cost
            held, cost = held - quantity, cost - sold_cost
        if held:
            state.holdings[ticker] = (held, cost)
        else:
            state.holdings.pop(ticker, None)
    return state


def ledger_differences(*, portfolio: Portfolio) -> list[str]:
    """Where the stored totals and holdings disagree with the replayed ledger (empty: none)."""
    expected = ledger_replay(portfolio=portfolio)
    stored = {h.ticker: (h.quantity, h.cost_basis) for h in portfolio.holdings.all()}
    problems = [
        f"{name}: stored {getattr(portfolio, name)}, ledger says {getattr(expected, name)}"
        for name in ("cash", "net_contributions", "realized_gain")
        if getattr(portfolio, name) != getattr(expected, name)
    ]
    for ticker in sorted(set(stored) | set(expected.holdings)):
        if stored.get(ticker) != expected.holdings.get(ticker):
            problems.append(
                f"holding {ticker}: stored (quantity, cost) {stored.get(ticker)}, "
                f"ledger says {expected.holdings.get(ticker)}"
            )
    return problems


def ledger_repair(*, portfolio: Portfolio) -> None:
    """Rewrite the running totals and holdings from the ledger."""
    with transaction.atomic():
        locked = _locked(portfolio)
        expected = ledger_replay(portfolio=locked)
        locked.cash = expected.cash
        locked.net_contributions = expected.net_contributions
        locked.realized_gain = expected.realized_gain
        locked.save(update_fields=["cash", "net_contributions", "realized_gain"])
        locked.holdings.all().delete()
        Holding.objects.bulk_create(
            Holding(portfolio=locked, ticker=t, quantity=q, cost_basis=c)
            for t, (q, c) in expected.holdings.items()
        )
    _refresh(portfolio, locked)
