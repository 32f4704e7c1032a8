from __future__ import annotations

import contextlib
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from marketdata.port import (
    InvalidTicker,
    MarketDataError,
    NoStoredPrices,
    PriceFetching,
    PricePoint,
    TickerNotFound,
    clean_query,
    close_of,
    get_price_port,
    normalize_ticker,
)
from portfolios import orders, services
from portfolios.exceptions import LedgerError, OrderClosed
from portfolios.forms import (
    CashForm,
    ClockForm,
    PortfolioCreateForm,
    PortfolioRenameForm,
    PreviewForm,
    SignupForm,
    TradeForm,
)
from portfolios.models import Order, Portfolio, Transaction, WatchedTicker
from portfolios.money import format_money, parse_typed_number
from portfolios.selectors import (
    portfolio_summaries,
    portfolio_summary,
    transactions_page,
    with_orders,
)
from portfolios.templatetags.money import gain, price, shares

INVALID = 422  # a form re-rendered with its errors


def portfolio_get_for_user(request: HttpRequest, pk: int) -> Portfolio:
    """The request user's portfolio ``pk``; anyone else's answers 404, as a missing one does."""
    return get_object_or_404(Portfolio.objects.for_user(request.user), pk=pk)


def _add_error(form, exc: LedgerError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


# --- accounts ---------------------------------------------------------------------------------
@login_not_required
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        messages.success(request, f"Welcome, {user.username}. Create a portfolio to start.")
        return redirect("dashboard")
    status = INVALID if form.errors else 200
    return render(request, "registration/signup.html", {"form": form}, status=status)


# --- dashboard --------------------------------------------------------------------------------
def _dashboard(request: HttpRequest, form: PortfolioCreateForm, status: int = 200) -> HttpResponse:
    portfolios = list(Portfolio.objects.for_user(request.user))
    form.bound_to(get_price_port().stored_range())
    context = {"summaries": portfolio_summaries(portfolios), "form": form}
    return render(request, "portfolios/dashboard.html", context, status=status)


@login_not_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """The signed-in person's portfolios; to anyone else, what the app is and the way in."""
    if not request.user.is_authenticated:
        return render(request, "portfolios/landing.html")
    return _dashboard(request, PortfolioCreateForm())


@require_POST
def portfolio_create(request: HttpRequest) -> HttpResponse:
    form = PortfolioCreateForm(request.POST)
    if form.is_valid():
        try:
            portfolio = services.portfolio_create(
                owner=request.user,
                name=form.cleaned_data["name"],
                opening_deposit=form.cleaned_data["opening_deposit"],
                starts_on=form.cleaned_data["starts_on"],
            )
        except LedgerError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, f"Portfolio “{portfolio.name}” created.")
            return redirect(portfolio)
    return _dashboard(request, form, status=INVALID)


# --- the watchlist ---------------------------------------------------------------------------
@require_GET
def watchlist(request: HttpRequest) -> HttpResponse:
    """The person's watchlist: prices from the cache and stored bars, polled like a portfolio."""
    from portfolios.watchlist import watch_rows

    context = {
        "rows": watch_rows(request.user),
        "poll_seconds": settings.PAPERTRADE.ui.poll_interval_seconds,
    }
    template = "portfolios/watchlist.html"
    if request.htmx and request.htmx.target == "watchlist-live":
        template += "#watchlist-live"
    return render(request, template, context)


@require_POST
def watchlist_add(request: HttpRequest) -> HttpResponse:
    try:
        ticker = normalize_ticker(request.POST.get("ticker", ""))
    except InvalidTicker as exc:
        messages.error(request, f"Not added to your watchlist: {exc}")
        return redirect("watchlist")
    WatchedTicker.objects.get_or_create(owner=request.user, ticker=ticker)
    messages.success(request, f"{ticker} is on your watchlist.")
    return redirect(_back(request, "watchlist"))


@require_POST
def watchlist_remove(request: HttpRequest, ticker: str) -> HttpResponse:
    removed, _ = WatchedTicker.objects.filter(owner=request.user, ticker=ticker).delete()
    if removed:
        messages.success(request, f"{ticker} is off your watchlist.")
    return redirect(_back(request, "watchlist"))


def _back(request: HttpRequest, default: str) -> str:
    """Where a form came from (``next``), if it is a path of this site; else ``default``."""
    from django.urls import reverse
    from django.utils.http import url_has_allowed_host_and_scheme

    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(target, allowed_hosts=None):
        return target
    return reverse(default)


# --- the time machine and performance ----------------------------------------------------------
@require_POST
def portfolio_clock(request: HttpRequest, pk: int) -> HttpResponse:
    """Move a time-machine portfolio's clock forward: a step or a date; refused with a message
    (and nothing changed) when it would go back or past the stored history."""
    portfolio = portfolio_get_for_user(request, pk)
    form = ClockForm(request.POST)
    if form.is_valid():
        try:
            to = form.cleaned_data["to"]
            if not to:
                if portfolio.clock is None:
                    raise LedgerError("This portfolio is live: it has no clock to move.")
                to = services.clock_target(portfolio.clock, form.cleaned_data["step"])
            was = portfolio.clock
            services.portfolio_advance(portfolio=portfolio, to=to)
        except LedgerError as exc:
            _add_error(form, exc)
            if portfolio.clock is None:  # no clock card to show it in
                messages.error(request, exc.message)
        else:
            closed = _orders_closed(portfolio, was) if portfolio.orders_placed else ""
            messages.success(request, f"The clock is at {portfolio.clock:%a %-d %b %Y}.{closed}")
            return redirect(portfolio)
    return _render_detail(request, portfolio, status=INVALID, clock_form=form)


def _orders_closed(portfolio: Portfolio, was) -> str:
    """What the clock's move did to the orders: " 1 order filled, 1 expired." (one query)."""
    from django.db.models import Count

    counts = dict(
        Order.objects.filter(
            portfolio=portfolio,
            closed_at__gt=close_of(was),
            closed_at__lte=close_of(portfolio.clock),
        )
        .exclude(status=Order.Status.OPEN)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
    )
    parts = [
        f"{counts[status]} {label}"
        for status, label in (
            (Order.Status.FILLED, "filled"),
            (Order.Status.EXPIRED, "expired"),
            (Order.Status.REJECTED, "rejected"),
            (Order.Status.CANCELLED, "cancelled by a split"),
        )
        if counts.get(status)
    ]
    return f" Orders on the way: {', '.join(parts)}." if parts else ""


@require_GET
def portfolio_performance(request: HttpRequest, pk: int) -> HttpResponse:
    """The value-over-time card: the chart for a range, the benchmark, the returns."""
    from portfolios import charts, performance

    portfolio = portfolio_get_for_user(request, pk)
    port = get_price_port()
    points = performance.value_series(portfolio, prices=port)
    name = charts.value_range(request.GET.get("range"))
    end = points[-1].day if points else performance.series_end(portfolio)
    start = charts.value_range_start(name, end)
    shown = [p for p in points if p.day >= start] if points else []
    benchmark, benchmark_error = charts.benchmark_ticker(request.GET.get("benchmark"), port), ""
    bench_line = []
    if shown and benchmark:
        try:
            bars = port.get_price_history(benchmark, shown[0].day, end, adjusted=True)
        except MarketDataError as exc:
            bars, benchmark_error = [], str(exc)
        bench_line = charts.rebased(bars, shown)
        if not bench_line and not benchmark_error:
            benchmark_error = f"No stored prices of {benchmark} in this range."
    context = {
        "portfolio": portfolio,
        "value_range": name,
        "value_ranges": charts.VALUE_RANGE_LABELS,
        "benchmark": benchmark,
        "benchmark_error": benchmark_error,
        "returns": performance.returns(points, start) if points else None,
        "value_chart": charts.value_chart(shown, bench_line, benchmark) if shown else "",
        "gaps": sum(1 for p in shown if p.carried),
    }
    return render(request, "portfolios/portfolio_detail.html#performance", context)


@require_GET
def portfolio_export(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    """The portfolio's transactions, holdings or value over time as a CSV download."""
    from django.http import StreamingHttpResponse

    from portfolios import export

    portfolio = portfolio_get_for_user(request, pk)
    if kind not in export.KINDS:
        raise Http404("There is no such export: transactions, holdings or value.")
    response = StreamingHttpResponse(
        export.csv_lines(export.ROWS[kind](portfolio)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{export.filename(portfolio, kind)}"'
    return response


# --- one portfolio ----------------------------------------------------------------------------
# What each region of the portfolio page needs; a partial request computes only its own.
REGION_PARTS = {
    "": {"live", "trade", "cash", "rename", "transactions"},  # the whole page
    "transactions": {"transactions"},  # the history's filters and pager
    "trade-panel": {"trade"},  # an order refused: the form with its errors
    "trade-result": {"trade", "live", "transactions"},  # an order filled, and what it changed
}


def _detail_context(request: HttpRequest, portfolio: Portfolio, region: str = "", **forms) -> dict:
    parts = REGION_PARTS[region]
    context: dict = {
        "portfolio": portfolio,
        "receipt": forms.get("receipt"),
        "placed": forms.get("placed"),
    }
    if portfolio.clock is not None and not region:
        context["clock_form"] = forms.get("clock_form") or ClockForm()
        stored = get_price_port().stored_range()
        context["last_session"] = stored[1] if stored else None
    if "live" in parts:
        context["summary"] = with_orders(portfolio_summary(portfolio))
        context["poll_seconds"] = settings.PAPERTRADE.ui.poll_interval_seconds
    if "trade" in parts:
        context["trade_form"] = forms.get("trade_form") or TradeForm(
            initial=_trade_initial(request)
        )
        context["preview_fetching"] = forms.get("preview_fetching", False)
        orders_config = settings.PAPERTRADE.orders
        context["gtc_days"] = orders_config.gtc_days
        context["stop_reserve_pct"] = f"{Decimal(str(orders_config.stop_reserve)) * 100:f}".rstrip(
            "0"
        ).rstrip(".")
    if "cash" in parts:
        context["deposit_form"] = forms.get("deposit_form") or _cash_form("deposit")
        context["withdraw_form"] = forms.get("withdraw_form") or _cash_form("withdraw")
    if "rename" in parts:
        context["rename_form"] = forms.get("rename_form") or PortfolioRenameForm(
            initial={"name": portfolio.name}
        )
    if "transactions" in parts:
        kind = request.GET.get("kind", "")
        context["transactions"] = transactions_page(
            portfolio,
            kind=kind,
            page=request.GET.get("page", 1),
            per_page=settings.PAPERTRADE.ui.transactions_per_page,
        )
        context["kind"] = kind if kind in Transaction.Kind.values else ""
        context["kinds"] = Transaction.Kind.choices
    return context


CASH_LABELS = {"deposit": "Deposit amount ($)", "withdraw": "Withdrawal amount ($)"}


def _cash_form(prefix: str, data=None) -> CashForm:
    return CashForm(data, prefix=prefix, label=CASH_LABELS[prefix])


def _trade_initial(request: HttpRequest) -> dict:
    initial = {}
    side = request.GET.get("side", "").upper()
    if side in ("BUY", "SELL"):
        initial["side"] = side
    with contextlib.suppress(InvalidTicker):
        initial["ticker"] = normalize_ticker(request.GET.get("ticker", ""))
    # A holding's "Sell" link fills in the shares owned; anything but a number is ignored.
    quantity = parse_typed_number(request.GET.get("quantity", "")[:32])
    if quantity is not None and quantity > 0:
        initial["quantity"] = f"{quantity.normalize():f}"
    return initial


def _render_detail(
    request: HttpRequest, portfolio: Portfolio, *, partial: str = "", status: int = 200, **forms
) -> HttpResponse:
    template = "portfolios/portfolio_detail.html"
    if partial:
        template += f"#{partial}"
    context = _detail_context(request, portfolio, partial, **forms)
    return render(request, template, context, status=status)


@require_GET
def portfolio_detail(request: HttpRequest, pk: int) -> HttpResponse:
    portfolio = portfolio_get_for_user(request, pk)
    partial = ""
    if request.htmx and request.htmx.target == "transactions":
        partial = "transactions"
    return _render_detail(request, portfolio, partial=partial)


@require_GET
def portfolio_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The holdings and totals alone, for polling: reads prices from the tiers, no writes."""
    portfolio = portfolio_get_for_user(request, pk)
    context = {
        "portfolio": portfolio,
        "summary": with_orders(portfolio_summary(portfolio)),
        "poll_seconds": settings.PAPERTRADE.ui.poll_interval_seconds,
    }
    return render(request, "portfolios/portfolio_detail.html#live", context)


@require_POST
def portfolio_trade(request: HttpRequest, pk: int) -> HttpResponse:
    portfolio = portfolio_get_for_user(request, pk)
    form = TradeForm(request.POST)
    fetching = False
    if form.is_valid():
        data = form.cleaned_data
        try:
            if data["order_type"] == "MARKET":
                write = services.portfolio_buy if data["side"] == "BUY" else services.portfolio_sell
                txn = write(portfolio=portfolio, ticker=data["ticker"], quantity=data["quantity"])
                placed = None
            else:
                placed = orders.order_place(
                    portfolio=portfolio,
                    side=data["side"],
                    kind=data["order_type"],
                    ticker=data["ticker"],
                    quantity=data["quantity"],
                    trigger=data["trigger"],
                    time_in_force=data["time_in_force"],
                )
                txn = placed.fill if placed.status == Order.Status.FILLED else None
                if placed.status == Order.Status.REJECTED:  # at once, at the current quote
                    raise LedgerError(f"The order was rejected: {placed.reason}")
        except LedgerError as exc:
            _add_error(form, exc)
            # The price is on its way: the preview polls for it (stored prices only).
            fetching = getattr(exc, "fetching", False)
        else:
            if request.htmx:
                return _render_detail(
                    request, portfolio, partial="trade-result", receipt=txn, placed=placed
                )
            messages.success(request, _receipt_text(txn) if txn else _placed_text(placed))
            return redirect(portfolio)
    partial = "trade-panel" if request.htmx else ""
    return _render_detail(
        request,
        portfolio,
        partial=partial,
        status=INVALID,
        trade_form=form,
        preview_fetching=fetching,
    )


def _placed_text(order: Order) -> str:
    return (
        f"Order placed: {order.label}; it reserves {order.reserve_label} until it fills, "
        "expires or is cancelled."
    )


@require_POST
def order_cancel(request: HttpRequest, pk: int, order_id: int) -> HttpResponse:
    """Cancel an open order (a plain form: the page comes back with what happened)."""
    portfolio = portfolio_get_for_user(request, pk)
    try:
        order = orders.order_cancel(portfolio=portfolio, order_id=order_id)
    except Order.DoesNotExist:
        raise Http404("No such order in this portfolio.") from None
    except OrderClosed as exc:
        messages.warning(request, exc.message)
    else:
        messages.success(
            request, f"Cancelled: {order.label}. {order.reserve_label} is available again."
        )
    return redirect(f"{portfolio.get_absolute_url()}#orders")


def _receipt_text(txn: Transaction) -> str:
    """The receipt of a plain-form order, as the page's message: money as money."""
    verb = "Bought" if txn.kind == Transaction.Kind.BUY else "Sold"
    as_of = timezone.localtime(txn.price_as_of).strftime("%Y-%m-%d %H:%M %Z")
    stale = " (stale price)" if txn.price_was_stale else ""
    realized = f"; realized gain {gain(txn.realized_gain)}" if txn.realized_gain is not None else ""
    return (
        f"{verb} {shares(txn.quantity)} {txn.ticker} at {price(txn.price)} "
        f"(as of {as_of}, {txn.price_source_label}){stale}: total {format_money(txn.total)}"
        f"{realized}."
    )


@require_GET
def trade_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """Price preview and estimated total for the trade form as typed; writes nothing and
    spends no quota (stored prices only: the order itself fetches a fresh one)."""
    portfolio = portfolio_get_for_user(request, pk)
    form = PreviewForm(request.GET)
    context: dict = {"portfolio": portfolio}
    if form.is_valid() and form.cleaned_data.get("ticker"):
        data = form.cleaned_data
        try:
            ticker = services.validate_ticker(data["ticker"])
            context["ticker"] = ticker
            context["side"] = data.get("side") or "BUY"
            context["owned"] = services.held_quantity(portfolio, ticker)
            if data.get("quantity"):
                quote = services.trade_quote(
                    ticker=ticker,
                    quantity=data["quantity"],
                    stored_only=True,
                    clock=portfolio.clock,  # a time machine's: its clock's close
                )
                context["quote"] = quote
                context["order_type"] = data.get("order_type") or "MARKET"
                context.update(_order_preview(portfolio, context, data))
            else:
                port = get_price_port()
                if portfolio.clock is not None:
                    point = port.get_prices_at([ticker], close_of(portfolio.clock))[ticker]
                else:
                    point = port.get_current_prices([ticker])[ticker]
                if isinstance(point, MarketDataError):
                    raise point
                context["price"] = point
        except (LedgerError, MarketDataError) as exc:
            context["error"] = getattr(exc, "message", str(exc))
            context["fetching"] = getattr(exc, "fetching", False)
        else:
            shown = context.get("quote") or context.get("price")
            point = shown.price if isinstance(shown, services.Quote) else shown
            context["fetching"] = bool(point and point.pending)
    return render(request, "portfolios/partials/_trade_preview.html", context)


def _order_preview(portfolio: Portfolio, context: dict, data: dict) -> dict:
    """What the preview says before the order is placed: for a market order the cash after it;
    for a limit or stop order what it reserves; and a warning when the available cash or
    shares (what open orders do not hold back) fall short. The order is checked again when
    placed."""
    quote, side = context["quote"], context["side"]
    reserves = services.reserves_of(portfolio)
    owned = context["owned"]
    free_shares = owned - min(reserves.shares_of(quote.ticker), owned)
    available = portfolio.cash - reserves.cash
    found: dict = {
        "available_cash": available,
        "reserved_cash": reserves.cash,
        "cash_after": None,
    }
    if reserves.shares_of(quote.ticker):
        found["free_shares"] = free_shares
    kind, trigger = context["order_type"], data.get("trigger")
    if kind != "MARKET":
        if trigger is None:
            found["short"] = f"Give the {kind.lower()} price to see what the order reserves."
            return found
        trigger = found["trigger"] = orders.validate_trigger(trigger, kind)
        if side == "SELL":
            found["reserve_text"] = f"{shares(quote.quantity)} {quote.ticker}"
        else:
            reserve = orders.reserve_for(
                side=side, kind=kind, quantity=quote.quantity, trigger=trigger
            )
            found["reserve_text"] = format_money(reserve)
            found["cash_after"] = available - reserve
            if reserve > available:
                found["short"] = (
                    f"It would reserve {format_money(reserve)}: "
                    f"{format_money(reserve - available)} more than the available cash "
                    f"({format_money(available)})."
                )
    else:
        sign = 1 if side == "SELL" else -1
        found["cash_after"] = available + sign * quote.total
        if side == "BUY" and quote.total > available:
            found["short"] = (
                f"That is {format_money(quote.total - available)} more than the available "
                f"cash ({format_money(available)})."
            )
    if side == "SELL" and quote.quantity > free_shares:
        found["short"] = (
            f"You have only {free_shares.normalize():f} {quote.ticker} to sell"
            + (" (the rest is reserved for open sell orders)" if free_shares < owned else "")
            + ": sell at most that."
        )
    return found


def _cash_action(request: HttpRequest, pk: int, *, prefix: str, write, verb: str) -> HttpResponse:
    portfolio = portfolio_get_for_user(request, pk)
    form = _cash_form(prefix, request.POST)
    if form.is_valid():
        try:
            txn = write(portfolio=portfolio, amount=form.cleaned_data["amount"])
        except LedgerError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, f"{verb} ${txn.total:,.2f}.")
            return redirect(portfolio)
    return _render_detail(request, portfolio, status=INVALID, **{f"{prefix}_form": form})


@require_POST
def portfolio_deposit(request: HttpRequest, pk: int) -> HttpResponse:
    return _cash_action(
        request, pk, prefix="deposit", write=services.portfolio_deposit, verb="Deposited"
    )


@require_POST
def portfolio_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    return _cash_action(
        request, pk, prefix="withdraw", write=services.portfolio_withdraw, verb="Withdrew"
    )


@require_POST
def portfolio_rename(request: HttpRequest, pk: int) -> HttpResponse:
    portfolio = portfolio_get_for_user(request, pk)
    form = PortfolioRenameForm(request.POST)
    if form.is_valid():
        try:
            services.portfolio_rename(portfolio=portfolio, name=form.cleaned_data["name"])
        except LedgerError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, f"Renamed to “{portfolio.name}”.")
            return redirect(portfolio)
    portfolio.refresh_from_db()
    return _render_detail(request, portfolio, status=INVALID, rename_form=form)


@require_http_methods(["GET", "POST"])
def portfolio_delete(request: HttpRequest, pk: int) -> HttpResponse:
    portfolio = portfolio_get_for_user(request, pk)
    if request.method == "POST":
        if request.POST.get("confirm") == portfolio.name:
            name = portfolio.name
            services.portfolio_delete(portfolio=portfolio)
            messages.success(request, f"Portfolio “{name}” deleted.")
            return redirect("dashboard")
        error = "Type the portfolio's name exactly to confirm."
        return render(
            request,
            "portfolios/portfolio_confirm_delete.html",
            {"portfolio": portfolio, "error": error},
            status=INVALID,
        )
    return render(request, "portfolios/portfolio_confirm_delete.html", {"portfolio": portfolio})


# --- stocks -----------------------------------------------------------------------------------
@require_GET
def stock_search(request: HttpRequest) -> HttpResponse:
    """The header's search box: a ticker or a company name. An exact or single match opens
    its stock page; several are listed; a well-formed ticker nobody matched is tried as is."""
    query = clean_query(request.GET.get("q", ""))
    matches = get_price_port().search_symbols(query) if query else []
    exact = [m for m in matches if m.ticker == query.upper()]
    if exact or len(matches) == 1:
        return redirect("stock_detail", ticker=(exact or matches)[0].ticker)
    if not matches:
        try:
            return redirect("stock_detail", ticker=normalize_ticker(query))
        except InvalidTicker:
            pass
    context = {"query": query, "matches": matches}
    return render(request, "portfolios/stock_search.html", context, status=200 if matches else 404)


@require_GET
@vary_on_headers("HX-Request")
def stock_detail(request: HttpRequest, ticker: str) -> HttpResponse:
    try:
        symbol = normalize_ticker(ticker)
    except InvalidTicker as exc:
        raise Http404(f"That is not a ticker: {exc}") from None
    if symbol != ticker:
        return redirect("stock_detail", ticker=symbol)
    port = get_price_port()
    fetching, status = False, 200
    # Opened from a time-machine portfolio: the stock as it stood at that portfolio's clock.
    machine = None
    with contextlib.suppress(ValueError, TypeError):
        machine = (
            Portfolio.objects.for_user(request.user)
            .filter(pk=int(request.GET.get("portfolio", "")), clock__isnull=False)
            .first()
        )
    try:
        if machine is not None:
            point = port.get_price_at(symbol, close_of(machine.clock))
        else:
            # No wait: the page answers from what is stored and picks a fetched price up by
            # polling (stock_price_status), so no web thread waits on the provider.
            point = port.get_current_price(symbol, wait=0)
    except NoStoredPrices as exc:
        # Perhaps a ticker, only nothing stored and nothing to fetch with: say so, by name.
        point, error, status = None, str(exc), 404
    except TickerNotFound:
        raise Http404(
            f"No prices are known for {symbol}: the provider has no such ticker."
        ) from None
    except PriceFetching as exc:
        point, error, fetching = None, str(exc), True
    except MarketDataError as exc:
        point, error = None, str(exc)
    else:
        error, fetching = "", point.pending
    from portfolios import charts  # plotly loads on the first chart, not at start-up

    chart_range = charts.chart_range(request.GET.get("range"))
    adjusted = request.GET.get("prices") != charts.AS_TRADED
    history, chart_error, splits = [], "", []
    if point is not None:
        # Up to the bar just read: the history needs nothing from upstream that it did not.
        end = point.session_date
        start = charts.range_start(chart_range, end)
        try:
            history = port.get_price_history(symbol, start, end, adjusted=adjusted)
        except MarketDataError as exc:
            chart_error = str(exc)
        if history:
            splits = [
                a
                for a in port.get_corporate_actions([symbol], since=history[0].session_date)
                if a.is_split and a.date <= end
            ]
    portfolios = Portfolio.objects.for_user(request.user).only("id", "name")
    context = {
        "ticker": symbol,
        "company": port.company_names([symbol]).get(symbol, ""),
        "point": point,
        "error": error,
        "chart": charts.price_chart(symbol, history, splits=splits, adjusted=adjusted)
        if history
        else "",
        "chart_error": chart_error,
        "chart_range": chart_range,
        "adjusted": adjusted,
        "splits": splits,
        "machine": machine,
        "watched": WatchedTicker.objects.filter(owner=request.user, ticker=symbol).exists(),
        "as_traded": charts.AS_TRADED,
        "chart_ranges": charts.CHART_RANGE_LABELS,
        "fetching": fetching,
        "shown_as_of": int(point.as_of.timestamp()) if point else 0,
        "latest_bar": history[-1] if history else None,
        "portfolios": portfolios,
        "change": (point.price - point.previous_close) if point and point.previous_close else None,
        "change_pct": ((point.price - point.previous_close) / point.previous_close * 100).quantize(
            Decimal("0.01")
        )
        if point and point.previous_close
        else None,
    }
    template = "portfolios/stock_detail.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#chart"  # a range button: the chart alone
    return render(request, template, context, status=status)


@require_GET
def stock_price_status(request: HttpRequest, ticker: str) -> HttpResponse:
    """Polled by a stock page whose price is being fetched: 204 while the fetch is under way;
    once it is over (a newer price, a failure, an unknown ticker), ``HX-Refresh`` reloads the
    page to show the outcome. Reads stored prices only: it never starts a fetch."""
    try:
        symbol = normalize_ticker(ticker)
        shown = int(request.GET.get("since", "0"))
    except (InvalidTicker, ValueError):
        raise Http404("No such ticker.") from None
    answer = get_price_port().get_current_prices([symbol])[symbol]
    newer = isinstance(answer, PricePoint) and answer.as_of.timestamp() > shown
    under_way = isinstance(answer, PriceFetching) or (
        isinstance(answer, PricePoint) and answer.pending
    )
    if under_way and not newer:
        return HttpResponse(status=204)
    response = HttpResponse(status=200)
    response["HX-Refresh"] = "true"
    return response
