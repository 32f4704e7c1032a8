"""Reads that shape whole pages. Each asks the price port once, with every ticker on the page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from django.core.paginator import Page, Paginator
from django.db.models import Case, Count, F, Value, When, Window
from django.utils import timezone

from marketdata.port import (
    MarketDataError,
    MarketDataPort,
    PricePoint,
    close_of,
    get_price_port,
)
from portfolios.models import Holding, Order, Portfolio, Transaction
from portfolios.money import to_cash

ZERO = Decimal("0")
HUNDRED = Decimal("100")


def _percent(part: Decimal, whole: Decimal) -> Decimal | None:
    return (part / whole * HUNDRED).quantize(Decimal("0.01")) if whole else None


@dataclass
class HoldingRow:
    ticker: str
    quantity: Decimal
    cost_basis: Decimal
    average_cost: Decimal
    price: PricePoint | None
    price_error: str = ""
    market_value: Decimal = ZERO
    unrealized_gain: Decimal | None = None
    unrealized_gain_pct: Decimal | None = None
    day_change: Decimal | None = None
    day_change_pct: Decimal | None = None
    weight_pct: Decimal | None = None
    company: str = ""
    reserved: Decimal = ZERO  # shares held back by open sell orders

    @property
    def available(self) -> Decimal:
        return self.quantity - self.reserved


@dataclass
class PortfolioSummary:
    portfolio: Portfolio
    holdings: list[HoldingRow] = field(default_factory=list)
    holdings_value: Decimal = ZERO
    total_value: Decimal = ZERO
    total_gain: Decimal = ZERO
    total_gain_pct: Decimal | None = None
    day_change: Decimal = ZERO
    day_change_pct: Decimal | None = None
    unrealized_gain: Decimal = ZERO
    any_stale: bool = False
    any_missing: bool = False
    priced_at: object = None
    # The detail page's orders (``with_orders``): the open ones, and the latest closed ones.
    open_orders: list[Order] = field(default_factory=list)
    closed_orders: list[Order] = field(default_factory=list)
    reserved_cash: Decimal = ZERO

    @property
    def cash(self) -> Decimal:
        return self.portfolio.cash

    @property
    def available_cash(self) -> Decimal:
        return self.portfolio.cash - self.reserved_cash


@dataclass(frozen=True)
class TodaysTrades:
    """A position's trades at prices of its current session: shares and cash each way."""

    bought: Decimal = ZERO
    sold: Decimal = ZERO
    spent: Decimal = ZERO  # on the shares bought
    received: Decimal = ZERO  # for the shares sold


NO_TRADES = TodaysTrades()


def _row(
    holding: Holding,
    price: PricePoint | MarketDataError | None,
    today: TodaysTrades = NO_TRADES,
) -> HoldingRow:
    row = HoldingRow(
        ticker=holding.ticker,
        quantity=holding.quantity,
        cost_basis=holding.cost_basis,
        average_cost=holding.average_cost,
        price=price if isinstance(price, PricePoint) else None,
    )
    if row.price is None:
        # No price to be had: value the position at cost so totals stay meaningful, and say so.
        row.price_error = str(price) if price else "No price available."
        row.market_value = holding.cost_basis
        return row
    row.market_value = to_cash(holding.quantity * row.price.price)
    row.unrealized_gain = row.market_value - holding.cost_basis
    row.unrealized_gain_pct = _percent(row.unrealized_gain, holding.cost_basis)
    if row.price.previous_close:
        # What the position gained since the previous close: its value now, less what the shares
        # held then were worth at that close, less what was paid for today's buys, plus what
        # today's sales brought in. Shares bought today gain from their fill, not from the close.
        held_then = holding.quantity - today.bought + today.sold
        start = held_then * row.price.previous_close + today.spent
        gain = holding.quantity * row.price.price + today.received - start
        row.day_change = to_cash(gain)
        row.day_change_pct = _percent(gain, start)
    return row


def _summarize(
    portfolio: Portfolio,
    holdings: Sequence[Holding],
    prices: dict[str, PricePoint | MarketDataError],
    today: dict[tuple[int, str], TodaysTrades],
    now,
) -> PortfolioSummary:
    summary = PortfolioSummary(portfolio=portfolio, priced_at=now)
    summary.holdings = [
        _row(h, prices.get(h.ticker), today.get((portfolio.pk, h.ticker), NO_TRADES))
        for h in holdings
    ]
    summary.holdings_value = sum((r.market_value for r in summary.holdings), ZERO)
    summary.total_value = portfolio.cash + summary.holdings_value
    for r in summary.holdings:
        r.weight_pct = _percent(r.market_value, summary.total_value)
        summary.any_stale |= bool(r.price and r.price.is_stale)
        summary.any_missing |= r.price is None
        summary.day_change += r.day_change or ZERO
        summary.unrealized_gain += r.unrealized_gain or ZERO
    # Deposits are not gains: the gain is what the portfolio is worth beyond what was put in.
    summary.total_gain = summary.total_value - portfolio.net_contributions
    summary.total_gain_pct = _percent(summary.total_gain, portfolio.net_contributions)
    # Today's change against what the portfolio was worth before it.
    summary.day_change_pct = _percent(summary.day_change, summary.total_value - summary.day_change)
    return summary


def portfolio_summaries(
    portfolios: Sequence[Portfolio], *, prices: MarketDataPort | None = None
) -> list[PortfolioSummary]:
    """Value every portfolio in ``portfolios``: one holdings query, one price-port call, one
    query of the trades made at today's prices (for the day change)."""
    portfolios = list(portfolios)
    holdings = list(Holding.objects.filter(portfolio__in=portfolios).order_by("ticker"))
    port = prices or get_price_port()
    by_portfolio: dict[int, list[Holding]] = {}
    for h in holdings:
        by_portfolio.setdefault(h.portfolio_id, []).append(h)
    # Live portfolios at today's prices; each time machine at its clock's closes (one price
    # read and one trades query per distinct clock).
    by_clock: dict[date | None, list[Portfolio]] = {}
    for p in portfolios:
        by_clock.setdefault(p.clock, []).append(p)
    now = timezone.now()
    summaries: dict[int, PortfolioSummary] = {}
    for clock, group in by_clock.items():
        tickers = sorted({h.ticker for p in group for h in by_portfolio.get(p.pk, [])})
        if clock is None:
            quotes = port.get_current_prices(tickers)
        else:
            quotes = port.get_prices_at(tickers, close_of(clock)) if tickers else {}
        today = todays_trades(group, quotes)
        for p in group:
            summaries[p.pk] = _summarize(p, by_portfolio.get(p.pk, []), quotes, today, now)
    names = port.company_names(sorted({h.ticker for h in holdings}))  # bundled: no query
    for summary in summaries.values():
        for row in summary.holdings:
            row.company = names.get(row.ticker, "")
    return [summaries[p.pk] for p in portfolios]


def todays_trades(
    portfolios: Sequence[Portfolio], quotes: dict[str, PricePoint | MarketDataError]
) -> dict[tuple[int, str], TodaysTrades]:
    """{(portfolio id, ticker): the trades filled at prices of the ticker's current session}.

    "Today" is the session of the price shown, not the calendar: a trade belongs to it when the
    price it filled at was from that session (so on a weekend, or over stored demo data, a
    trade at the last close is today's). One query of the trades since the earliest such
    session began (a few rows), none when nothing has a previous close to measure the day from.
    """
    sessions = {
        ticker: point.session_start
        for ticker, point in quotes.items()
        if isinstance(point, PricePoint) and point.previous_close
    }
    if not portfolios or not sessions:
        return {}
    since = min(sessions.values())
    rows = (
        Transaction.objects.trades()
        .filter(portfolio__in=portfolios, ticker__in=sessions, executed_at__gte=since)
        .filter(price_as_of__gte=since)
        .values_list("portfolio_id", "ticker", "kind", "quantity", "cash_change", "price_as_of")
        .order_by()
    )
    trades: dict[tuple[int, str], TodaysTrades] = {}
    for portfolio_id, ticker, kind, quantity, cash, price_as_of in rows:
        if price_as_of < sessions[ticker]:
            continue  # filled at a price of an earlier session than this ticker's
        t = trades.get((portfolio_id, ticker), NO_TRADES)
        if kind == Transaction.Kind.BUY:  # cash_change is negative: money spent
            t = replace(t, bought=t.bought + quantity, spent=t.spent - cash)
        else:
            t = replace(t, sold=t.sold + quantity, received=t.received + cash)
        trades[portfolio_id, ticker] = t
    return trades


def portfolio_summary(
    portfolio: Portfolio, *, prices: MarketDataPort | None = None
) -> PortfolioSummary:
    return portfolio_summaries([portfolio], prices=prices)[0]


CLOSED_ORDERS_SHOWN = 5


def with_orders(summary: PortfolioSummary) -> PortfolioSummary:
    """Add the portfolio's orders to its summary, in one query: every open order (with what it
    reserves: the available cash, and the shares of each holding held back) and the latest
    few closed ones (filled, cancelled, expired or rejected, with the reason). A portfolio
    that never placed an order reads none: most do not, and a page on a slow database link
    counts its round trips."""
    if not summary.portfolio.orders_placed:
        return summary
    is_open = Case(When(status=Order.Status.OPEN, then=Value(0)), default=Value(1))
    rows = (
        Order.objects.filter(portfolio=summary.portfolio)
        .select_related("fill")
        .order_by(is_open, F("closed_at").desc(nulls_last=True), "-placed_at", "-id")
    )
    from portfolios.orders import MAX_OPEN_ORDERS  # what one portfolio may keep open

    for order in rows[: MAX_OPEN_ORDERS + CLOSED_ORDERS_SHOWN]:
        if order.is_open:
            summary.open_orders.append(order)
        elif len(summary.closed_orders) < CLOSED_ORDERS_SHOWN:
            summary.closed_orders.append(order)
    summary.reserved_cash = sum((o.reserved_cash for o in summary.open_orders), ZERO)
    held_back: dict[str, Decimal] = {}
    for o in summary.open_orders:
        held_back[o.ticker] = held_back.get(o.ticker, ZERO) + o.reserved_shares
    for row in summary.holdings:
        row.reserved = min(held_back.get(row.ticker, ZERO), row.quantity)
    return summary


def transactions_page(
    portfolio: Portfolio, *, kind: str = "", page: object = 1, per_page: int = 25
) -> Page:
    """One page of the ledger, newest first, optionally of one kind: one query, the page's rows
    each carrying the count of all of them (``COUNT(*) OVER ()``) for the paginator, where
    Django's would first ask the count and then the rows."""
    rows = Transaction.objects.filter(portfolio=portfolio)
    if kind in Transaction.Kind.values:
        rows = rows.filter(kind=kind)
    paginator = Paginator(rows, per_page)
    try:
        number = max(1, int(page))
    except (TypeError, ValueError):
        number = 1
    start = (number - 1) * per_page
    window = list(rows.annotate(of=Window(Count("pk")))[start : start + per_page])
    if not window:  # past the end, or no rows at all: Django's own way (it counts first)
        return paginator.get_page(page)
    paginator.count = window[0].of  # a cached_property: set, it is not asked again
    return Page(window, number, paginator)


def held_tickers() -> list[str]:
    """Every ticker held in any portfolio, alphabetical, in one query.

    What the scheduled price refresh asks (``settings.PAPERTRADE_HELD_TICKERS``): marketdata
    knows nothing else of portfolios."""
    return list(Holding.objects.order_by("ticker").values_list("ticker", flat=True).distinct())


def order_tickers() -> list[str]:
    """Every ticker with an open order on a live portfolio, alphabetical, in one query
    (``settings.PAPERTRADE_ORDER_TICKERS``, for the refresh plan: the order waits on its bar)."""
    from portfolios.models import Order

    return list(
        Order.objects.filter(status=Order.Status.OPEN, portfolio__clock__isnull=True)
        .order_by("ticker")
        .values_list("ticker", flat=True)
        .distinct()
    )


def watched_tickers() -> list[str]:
    """Every ticker on anyone's watchlist, alphabetical, in one query
    (``settings.PAPERTRADE_WATCHED_TICKERS``, for the refresh plan)."""
    from portfolios.models import WatchedTicker

    return list(
        WatchedTicker.objects.order_by("ticker").values_list("ticker", flat=True).distinct()
    )
