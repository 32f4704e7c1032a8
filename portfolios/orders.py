"""Orders that wait (PRODUCT §11): limit and stop orders, their reserves, and their fills.

An open order reserves what it may spend — a buy limit × quantity of cash (a stop buy stop ×
quantity × (1 + ``orders.stop_reserve``)), a sell its shares — and every rule that spends
cash or shares (a withdrawal, a market order, another order) counts only what is not
reserved (``services.reserves_of``). Placing, cancelling, filling and expiring lock the
portfolio row, like a trade.

An order is checked against each stored daily bar of its ticker whose session opens after it
was placed (``fills.fill``: the conservative rule) — when a refresh, an import or an
interactive fetch stores a bar (``market_data_stored``), and when a time-machine portfolio's
clock crosses the session. On a live portfolio a bar of a session still trading is a live
quote: an order placed during that session fills at it when marketable there and the quote was
taken after the order (``fills.fill_at_quote``); an order placed when such a quote is current
fills at it at once. Outcomes are applied in session order, so cash freed or spent by one fill
counts for the next.

A fill is an ordinary BUY or SELL ledger entry: its price source and as-of are the bar's (or
the quote's), and ``price_rule`` says which rule fired ("limit, touched"). The order's reserve
is released; a buy whose fill costs more than its reserve and the free cash together (a stop
buy that gapped far above its stop) is rejected with the reason recorded, never overdrawn. A
Day order expires when the bar of its one session does not fill it; a GTC order when no bar
fills it by ``orders.gtc_days`` days after it was placed. A split of its ticker after it was
placed cancels it (its price and quantity were in the old shares), and says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marketdata.port import (
    MarketDataPort,
    PricePoint,
    close_of,
    get_price_port,
    open_of,
    session_date,
)
from portfolios import services
from portfolios.exceptions import InvalidTrigger, LedgerError, OrderClosed
from portfolios.fills import Fill, fill, fill_at_quote
from portfolios.models import Holding, Order, Portfolio
from portfolios.money import (
    MAX_AMOUNT,
    MAX_CASH,
    MAX_QUANTITY,
    PRICE_PLACES,
    format_money,
    format_price,
    to_cash,
)

logger = logging.getLogger(__name__)

ZERO = Decimal("0")
MAX_OPEN_ORDERS = 500  # per portfolio: the page lists them all
MAX_TRIGGER = Decimal("1000000")  # a limit or stop price above a million dollars a share is a typo
# A live order whose last session passed this long ago without a stored bar expires unfilled.
NO_BAR_GRACE = timedelta(days=7)


def validate_trigger(value: object, kind: str = Order.Kind.LIMIT) -> Decimal:
    noun = "limit price" if kind == Order.Kind.LIMIT else "stop price"
    return services._check_decimal(
        value, what=noun, places=PRICE_PLACES, maximum=MAX_TRIGGER, error=InvalidTrigger
    )


def _choice(value: object, choices, what: str) -> str:
    if value not in choices.values:
        raise LedgerError(f"Choose the {what}: {', '.join(choices.labels)}.")
    return value  # type: ignore[return-value]


def stop_reserve() -> Decimal:
    return Decimal(str(settings.PAPERTRADE.orders.stop_reserve))


def reserve_for(*, side: str, kind: str, quantity: Decimal, trigger: Decimal) -> Decimal:
    """The cash an open order reserves: a buy limit × quantity, a stop buy stop × quantity ×
    (1 + stop_reserve), to the cent; a sell none (it reserves its shares)."""
    if side != Order.Side.BUY:
        return ZERO
    cost = quantity * trigger
    if kind == Order.Kind.STOP:
        cost *= 1 + stop_reserve()
    return to_cash(cost)


def last_session(time_in_force: str, placed_at: datetime, port: MarketDataPort) -> date:
    """The last session whose bar may fill an order placed at ``placed_at``: a Day order's one
    session is the first that opens after it (a session under way when it is placed has a bar
    that began before it); a GTC order's is the last session within ``orders.gtc_days``
    calendar days."""
    day = session_date(placed_at)
    if time_in_force == Order.TimeInForce.GTC:
        last = day + timedelta(days=settings.PAPERTRADE.orders.gtc_days)
        within = port.sessions(last - timedelta(days=10), last)  # a session, not a weekend
        return within[-1] if within and within[-1] > day else last
    following = [s for s in port.sessions(day, day + timedelta(days=10)) if open_of(s) > placed_at]
    return following[0] if following else day + timedelta(days=1)


# --- placing and cancelling -----------------------------------------------------------------------
def order_place(
    *,
    portfolio: Portfolio,
    side: str,
    kind: str,
    ticker: str,
    quantity: Decimal,
    trigger: Decimal,
    time_in_force: str = Order.TimeInForce.DAY,
    prices: MarketDataPort | None = None,
) -> Order:
    """Place a limit or stop order: check it, reserve its cash or shares and keep it open. On a
    live portfolio a current live quote at which it is marketable fills it at once."""
    side = _choice(side, Order.Side, "side")
    kind = _choice(kind, Order.Kind, "order type")
    time_in_force = _choice(time_in_force, Order.TimeInForce, "time in force")
    trigger = validate_trigger(trigger, kind)
    port = prices or get_price_port()
    # The ticker must be known and priced, as for a market order (a time machine: its clock's
    # close); the price itself is what a marketable order may fill at.
    quote = services.trade_quote(
        ticker=ticker, quantity=quantity, prices=port, clock=portfolio.clock
    )
    ticker, quantity = quote.ticker, quote.quantity
    reserve = reserve_for(side=side, kind=kind, quantity=quantity, trigger=trigger)
    if side == Order.Side.BUY and reserve <= 0:
        raise InvalidTrigger(
            f"{quantity.normalize():f} {ticker} at {format_price(trigger)} comes to less than a "
            "cent; raise the quantity or the price."
        )
    if reserve > MAX_AMOUNT:
        raise LedgerError(
            f"One order may reserve at most {format_money(MAX_AMOUNT)}.", field="quantity"
        )
    now = timezone.now()
    with transaction.atomic():
        locked = services._locked(portfolio)
        services._same_clock(portfolio, locked)
        placed_at = services._entry_time(locked)
        reserves = services.reserves_of(locked)
        if reserves.orders >= MAX_OPEN_ORDERS:
            raise LedgerError(
                f"A portfolio may keep at most {MAX_OPEN_ORDERS} orders open; cancel one first."
            )
        if side == Order.Side.BUY:
            services._check_cash(locked, reserve, reserves, "quantity")
        else:
            held = services.held_quantity(locked, ticker)
            services._check_shares(ticker, held, quantity, reserves)
        order = Order.objects.create(
            portfolio=locked,
            side=side,
            kind=kind,
            ticker=ticker,
            quantity=quantity,
            trigger=trigger,
            time_in_force=time_in_force,
            placed_at=placed_at,
            expires_on=last_session(time_in_force, placed_at, port),
            reserved_cash=reserve,
            reserved_shares=quantity if side == Order.Side.SELL else ZERO,
        )
        locked.orders_placed += 1
        locked.save(update_fields=["orders_placed"])
        point = quote.price
        if locked.clock is None and point.as_of > now:  # a live quote of a session under way
            found = fill_at_quote(side=side, kind=kind, trigger=trigger, price=point.price)
            if found is not None:
                # The quote is the price now (its bar is stamped at the coming close).
                at_quote = point.replace(as_of=now)
                _apply(locked, _Outcome(order, point.session_date, found, at_quote), now=now)
    services._refresh(portfolio, locked)
    order.refresh_from_db()
    return order


def order_cancel(*, portfolio: Portfolio, order_id: int) -> Order:
    """Cancel an open order and release its reserve. An order that closed first (it has just
    filled, or expired) is not cancelled: the error says what became of it."""
    with transaction.atomic():
        locked = services._locked(portfolio)
        order = Order.objects.select_related("fill").get(portfolio=locked, pk=order_id)
        if not order.is_open:
            raise OrderClosed(closed_message(order))
        # At the clock on a time machine, like its fills and expiries: its closed orders read
        # in the clock's time order.
        at = services._entry_time(locked) if locked.is_time_machine else timezone.now()
        _close(order, Order.Status.CANCELLED, at, "Cancelled by its owner.")
    services._refresh(portfolio, locked)
    return order


def closed_message(order: Order) -> str:
    """Why an order can no longer be cancelled: what became of it."""
    if order.status == Order.Status.FILLED:
        txn = order.fill
        verb = "bought" if order.side == Order.Side.BUY else "sold"
        return (
            f"This order has just filled: {verb} {txn.quantity.normalize():f} {order.ticker} "
            f"at {format_price(txn.price)} ({txn.price_rule}). See the transactions."
        )
    what = order.get_status_display().lower()
    return f"This order was already {what}: {order.reason or 'it is no longer open.'}"


# --- checking open orders against bars --------------------------------------------------------
@dataclass(frozen=True)
class _Outcome:
    order: Order
    session: date
    fill: Fill | None = None
    bar: PricePoint | None = None  # what it filled at: a bar, or a live quote (as of its time)
    status: str = Order.Status.FILLED
    reason: str = ""


@dataclass
class CheckedOrders:
    filled: int = 0
    expired: int = 0
    rejected: int = 0
    cancelled: int = 0

    def __str__(self) -> str:
        return (
            f"{self.filled} orders filled, {self.expired} expired, {self.rejected} rejected, "
            f"{self.cancelled} cancelled by a split"
        )

    def add(self, status: str) -> None:
        name = {"FILLED": "filled", "EXPIRED": "expired", "REJECTED": "rejected"}.get(status)
        name = name or "cancelled"
        setattr(self, name, getattr(self, name) + 1)


def check_orders(
    *,
    tickers=None,
    portfolio: Portfolio | None = None,
    prices: MarketDataPort | None = None,
    now: datetime | None = None,
) -> CheckedOrders:
    """Check the open orders (of ``tickers``, of ``portfolio``, or all) against the stored bars
    and apply what they say: fills, expiries, rejections. Each portfolio under its own lock."""
    port = prices or get_price_port()
    now = now or timezone.now()
    open_orders = Order.objects.filter(status=Order.Status.OPEN)
    if tickers is not None:
        open_orders = open_orders.filter(ticker__in=list(tickers))
    if portfolio is not None:
        open_orders = open_orders.filter(portfolio=portfolio)
    done = CheckedOrders()
    ids = sorted(set(open_orders.order_by().values_list("portfolio_id", flat=True)))
    for portfolio_id in ids:
        try:
            with transaction.atomic():
                locked = Portfolio.objects.select_for_update().get(pk=portfolio_id)
                for status in check_locked(locked, port=port, now=now, tickers=tickers):
                    done.add(status)
        except (Portfolio.DoesNotExist, LedgerError) as exc:
            # Deleted meanwhile, or a rule the outcome broke: that portfolio's orders wait for
            # the next check (its transaction rolled back); the others go on.
            logger.warning("orders of portfolio %s not checked: %s", portfolio_id, exc)
    return done


def check_overdue(*, now: datetime | None = None) -> CheckedOrders:
    """Expire the live orders whose last session passed long ago with no bar of it stored (a
    ticker nobody refreshes any more): one query when there are none."""
    now = now or timezone.now()
    overdue = Order.objects.filter(
        status=Order.Status.OPEN,
        portfolio__clock__isnull=True,
        expires_on__lt=session_date(now) - NO_BAR_GRACE,
    )
    tickers = sorted(set(overdue.values_list("ticker", flat=True)))
    return check_orders(tickers=tickers, now=now) if tickers else CheckedOrders()


def check_locked(
    locked: Portfolio, *, port: MarketDataPort, now: datetime, tickers=None
) -> list[str]:
    """``check_orders`` for one portfolio whose row the caller has locked: its bars up to its
    clock (a time machine) or now. Returns the statuses the orders closed with."""
    orders = list(locked.orders.filter(status=Order.Status.OPEN))
    if tickers is not None:
        wanted = set(tickers)
        orders = [o for o in orders if o.ticker in wanted]
    if not orders:
        return []
    live = locked.clock is None
    until = session_date(now) if live else locked.clock
    since = min(session_date(o.placed_at) for o in orders)
    names = sorted({o.ticker for o in orders})
    bars = port.get_stored_bars(names, since, until)
    splits: dict[str, list[date]] = {}
    for action in port.get_corporate_actions(names, since=since + timedelta(days=1)):
        if action.is_split:
            splits.setdefault(action.ticker, []).append(action.date)
    outcomes = []
    for order in orders:
        found = _outcome(
            order,
            bars.get(order.ticker, []),
            splits.get(order.ticker, []),
            live=live,
            now=now,
            until=until,
        )
        if found is not None:
            outcomes.append(found)
    # In session order, then the order they were placed in: what one fill spends or frees
    # counts for the next, as it would have at the time.
    outcomes.sort(key=lambda o: (o.session, o.order.placed_at, o.order.pk))
    return [_apply(locked, outcome, now=now) for outcome in outcomes]


def _outcome(
    order: Order,
    bars: list[tuple[PricePoint, datetime]],
    splits: list[date],
    *,
    live: bool,
    now: datetime,
    until: date,
) -> _Outcome | None:
    """What the stored bars say of one open order: the first that fills it, or where it
    expires (or is cancelled by a split); None: it waits."""
    placed = session_date(order.placed_at)
    # The first split after it was placed, if it comes before the order's last session.
    split = next((d for d in sorted(splits) if placed < d <= order.expires_on), None)
    for i, (bar, fetched_at) in enumerate(bars):
        day = bar.session_date
        if split is not None and day >= split:
            return _cancelled_by_split(order, split)
        if day > order.expires_on:
            break  # no bar of its last session was stored: it expires below
        # A live bar is complete once its session closed and it was fetched after the close, or
        # a later session's bar is stored (the fetch that brought it rewrote this one if it
        # changed); before that it is a quote: it may fill, never expire.
        final = fetched_at >= bar.as_of or i + 1 < len(bars)
        complete = not live or (bar.as_of <= now and final)
        if open_of(day) > order.placed_at:
            found = fill(
                side=order.side,
                kind=order.kind,
                trigger=order.trigger,
                bar=bar,
                placed_at=order.placed_at,
            )
            if found is not None:
                return _Outcome(order, day, found, bar)
        elif live and not complete and fetched_at > order.placed_at:
            found = fill_at_quote(
                side=order.side, kind=order.kind, trigger=order.trigger, price=bar.price
            )
            if found is not None:
                return _Outcome(order, day, found, bar.replace(as_of=fetched_at))
        if complete and day >= order.expires_on:
            return _Outcome(order, day, status=Order.Status.EXPIRED, reason=_expired(order, day))
    if split is not None and split <= until:
        return _cancelled_by_split(order, split)
    overdue = until > order.expires_on if not live else until - order.expires_on > NO_BAR_GRACE
    if overdue:
        return _Outcome(
            order,
            order.expires_on,
            status=Order.Status.EXPIRED,
            reason=f"No bar of {order.ticker} was stored for {order.expires_on:%a %-d %b %Y}, "
            "its last session.",
        )
    return None


def _cancelled_by_split(order: Order, split: date) -> _Outcome:
    return _Outcome(
        order,
        split,
        status=Order.Status.CANCELLED,
        reason=f"A split of {order.ticker} took effect on {split:%a %-d %b %Y}; the order's "
        "price and quantity were in the old shares. Place it again.",
    )


def _expired(order: Order, day: date) -> str:
    if order.time_in_force == Order.TimeInForce.DAY:
        return f"A Day order: the bar of {day:%a %-d %b %Y}, its session, did not reach it."
    days = settings.PAPERTRADE.orders.gtc_days
    return f"Good till cancelled, for {days} days: no bar up to {day:%a %-d %b %Y} reached it."


def _apply(locked: Portfolio, outcome: _Outcome, *, now: datetime) -> str:
    """Apply one outcome under the portfolio lock: a fill (or its rejection), an expiry."""
    order = outcome.order
    # A live fill is entered now; a time machine's at its session's close (in time order).
    at = services._entry_time(locked)
    if not locked.is_time_machine:
        at = max(now, at)
    elif outcome.session < locked.clock:
        at = max(close_of(outcome.session), locked.last_entry_at or close_of(outcome.session))
    if outcome.fill is None:
        _close(order, outcome.status, at, outcome.reason)
        return outcome.status
    price = outcome.fill.price
    quote = services.Quote(
        ticker=order.ticker,
        quantity=order.quantity,
        price=outcome.bar.replace(price=price, is_stale=False, pending=False),
        total=to_cash(order.quantity * price),
    )
    reason = _cannot_fill(locked, order, quote, outcome.fill)
    if reason:
        _close(order, Order.Status.REJECTED, at, reason)
        return Order.Status.REJECTED
    _close(order, Order.Status.FILLED, at)  # first: the reserve is released for the check
    if order.side == Order.Side.BUY:
        services.book_buy(locked, quote, at, order=order, rule=outcome.fill.rule)
    else:
        holding = Holding.objects.get(portfolio=locked, ticker=order.ticker)
        services.book_sell(locked, holding, quote, at, order=order, rule=outcome.fill.rule)
    return Order.Status.FILLED


def _cannot_fill(locked: Portfolio, order: Order, quote: services.Quote, found: Fill) -> str:
    """Why ``order`` cannot fill at ``quote`` (empty: it can)."""
    at = f"At {format_price(found.price)} ({found.rule})"
    if quote.total <= 0:
        return f"{at} the fill comes to less than a cent."
    if order.side == Order.Side.BUY:
        if services.held_quantity(locked, order.ticker) + order.quantity > MAX_QUANTITY:
            return f"{at} the holding would pass {MAX_QUANTITY.normalize():,f} shares."
        others = services.reserves_of(locked).cash - order.reserved_cash
        available = locked.cash - others
        if quote.total > available:
            return (
                f"{at} the fill would cost {format_money(quote.total)}, more than the "
                f"{format_money(available)} available (its reserve of "
                f"{format_money(order.reserved_cash)} and the free cash): rejected, not "
                "overdrawn."
            )
        return ""
    held = services.held_quantity(locked, order.ticker)
    if held < order.quantity:
        return (
            f"{at} it would sell {order.quantity.normalize():f} {order.ticker}, but only "
            f"{held.normalize():f} are held."
        )
    if locked.cash + quote.total > MAX_CASH:
        return f"{at} the cash would pass {format_money(MAX_CASH)}."
    return ""


def _close(order: Order, status: str, at: datetime, reason: str = "") -> None:
    """Close an open order; its reserve is released with it (reserves count open orders only).
    The update is conditional on the order still being open: it closes once."""
    closed = Order.objects.filter(pk=order.pk, status=Order.Status.OPEN).update(
        status=status, closed_at=at, reason=reason[:300]
    )
    if not closed:  # under the portfolio lock this cannot happen; never close an order twice
        raise OrderClosed("This order is no longer open.")
    order.status, order.closed_at, order.reason = status, at, reason[:300]
