"""Limit and stop orders (PRODUCT §11.1, §11.2): the conservative fill rule through the
ledger, reserves that no other rule may spend, Day and GTC expiry, the rejected stop buy, the
split that cancels an order, cancelling, and fills on bars stored by an import (the signal).

Most cases use a time-machine portfolio (its clock fixes when an order was placed and which
sessions it crosses); the live ones place the order and then say when it was placed."""

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketdata.bars import DailyBar
from marketdata.models import CorporateAction
from marketdata.plan import refresh_plan
from marketdata.port import ActionKind, Source, close_of, day_start
from marketdata.price_cache import announce_stored, forget_current_prices
from marketdata.storage import upsert_daily_bars
from portfolios.exceptions import InsufficientFunds, InsufficientShares, LedgerError, OrderClosed
from portfolios.models import Holding, Order, Portfolio, Transaction
from portfolios.orders import check_orders, order_cancel, order_place
from portfolios.services import (
    ledger_differences,
    portfolio_advance,
    portfolio_buy,
    portfolio_create,
    portfolio_sell,
    portfolio_withdraw,
    reserves_of,
)

pytestmark = pytest.mark.django_db
D = Decimal
D0, D1, D2, D3 = date(2025, 7, 24), date(2025, 7, 25), date(2025, 7, 28), date(2025, 7, 29)


def bar(ticker: str, day: date, o: str, h: str, low: str, c: str, *, fetched_at=None) -> None:
    """Store one daily bar as a fetch or an import does, and announce it (the listeners run)."""
    upsert_daily_bars(
        ticker=ticker,
        bars=[DailyBar(day=day, open=D(o), high=D(h), low=D(low), close=D(c), volume=1000)],
        source=Source.IMPORT,
        fetched_at=fetched_at or timezone.now(),
    )
    announce_stored([ticker])


@pytest.fixture
def history(db):
    """AAPL closes at 200 on D0; the test stores the later sessions' bars."""
    upsert_daily_bars(
        ticker="AAPL",
        bars=[DailyBar(D0, D("199"), D("201"), D("198"), D("200"), 1000)],
        source=Source.IMPORT,
        fetched_at=timezone.now(),
    )
    forget_current_prices(["AAPL"])


def machine(user, history_bars: list[tuple]) -> Portfolio:
    """A time machine at D0 with $10,000, after the later bars are stored (clock moves only
    within the stored history)."""
    for row in history_bars:
        bar("AAPL", *row)
    return portfolio_create(owner=user, name="Orders", opening_deposit=D("10000"), starts_on=D0)


def split_aapl_on(day: date) -> None:
    """Record a 10-for-1 split of AAPL effective on ``day``."""
    CorporateAction.objects.create(
        ticker="AAPL",
        kind=ActionKind.SPLIT,
        date=day,
        value=D("10"),
        source=Source.IMPORT,
        fetched_at=timezone.now(),
    )


def place(portfolio, side="BUY", kind="LIMIT", quantity="10", trigger="195", tif="GTC") -> Order:
    return order_place(
        portfolio=portfolio,
        side=side,
        kind=kind,
        ticker="AAPL",
        quantity=D(quantity),
        trigger=D(trigger),
        time_in_force=tif,
    )


def fill_of(order: Order) -> Transaction:
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED, (order.status, order.reason)
    return Transaction.objects.get(order=order)


# --- the rule, through the ledger -------------------------------------------------------------
def test_a_buy_limit_gapped_through_at_the_open_fills_at_the_open(user, history):
    p = machine(user, [(D1, "190", "199", "189", "197")])
    order = place(p, trigger="195")
    assert reserves_of(p).cash == D("1950.00")
    portfolio_advance(portfolio=p, to=D1)
    txn = fill_of(order)
    assert (txn.kind, txn.price, txn.quantity) == ("BUY", D("190"), D("10"))
    assert txn.price_rule == "limit, opened through"
    assert (txn.price_source, txn.price_as_of) == (Source.IMPORT, close_of(D1))
    assert txn.executed_at == close_of(D1)
    p.refresh_from_db()
    assert p.cash == D("8100.00")  # 10,000 − 10 × 190: the unused 50 of the reserve is freed
    assert reserves_of(p).cash == 0
    assert ledger_differences(portfolio=p) == []


def test_a_buy_limit_touched_intraday_fills_at_the_limit(user, history):
    p = machine(user, [(D1, "198", "199", "194", "197")])
    order = place(p, trigger="195")
    portfolio_advance(portfolio=p, to=D1)
    txn = fill_of(order)
    assert (txn.price, txn.price_rule) == (D("195"), "limit, touched")
    p.refresh_from_db()
    assert p.cash == D("8050.00")


def test_a_limit_not_reached_waits_and_keeps_its_reserve(user, history):
    p = machine(user, [(D1, "198", "199", "196", "197"), (D2, "197", "198", "195.01", "196")])
    order = place(p, trigger="195")
    portfolio_advance(portfolio=p, to=D2)
    order.refresh_from_db()
    assert order.status == Order.Status.OPEN
    assert not Transaction.objects.filter(order=order).exists()
    assert reserves_of(p).cash == D("1950.00")


def test_a_bar_of_the_session_the_order_was_placed_in_does_not_fill_it(user, history):
    # D1's low (150) is far under the limit, but the order is placed at D1's close: only D2's
    # bar, which does not reach 195, may fill it.
    p = machine(user, [(D1, "198", "199", "150", "197"), (D2, "198", "199", "196", "197")])
    portfolio_advance(portfolio=p, to=D1)
    order = place(p, trigger="195")
    assert order.placed_at == close_of(D1)
    portfolio_advance(portfolio=p, to=D2)
    order.refresh_from_db()
    assert order.status == Order.Status.OPEN


def test_a_sell_limit_reserves_its_shares_and_fills_at_the_limit(user, history):
    p = machine(user, [(D1, "205", "212", "204", "211")])
    portfolio_buy(portfolio=p, ticker="AAPL", quantity=D("10"))  # at D0's close, 200
    order = place(p, side="SELL", trigger="210")
    with pytest.raises(InsufficientShares, match="0 available \\(10 more are reserved"):
        portfolio_sell(portfolio=p, ticker="AAPL", quantity=D("1"))
    with pytest.raises(InsufficientShares):
        place(p, side="SELL", quantity="1", trigger="220")
    portfolio_advance(portfolio=p, to=D1)
    txn = fill_of(order)
    assert (txn.kind, txn.price, txn.price_rule) == ("SELL", D("210"), "limit, touched")
    assert txn.realized_gain == D("100.00")
    assert not Holding.objects.filter(portfolio=p).exists()
    assert ledger_differences(portfolio=p) == []


def test_a_sell_stop_gapped_through_fills_at_the_open(user, history):
    p = machine(user, [(D1, "180", "185", "178", "182")])
    portfolio_buy(portfolio=p, ticker="AAPL", quantity=D("10"))
    order = place(p, side="SELL", kind="STOP", trigger="190")
    portfolio_advance(portfolio=p, to=D1)
    txn = fill_of(order)
    assert (txn.price, txn.price_rule) == (D("180"), "stop, gapped through")


# --- expiry ---------------------------------------------------------------------------------------
def test_a_day_order_expires_when_its_sessions_bar_does_not_fill_it(user, history):
    # D2's low would fill it, but a Day order placed at D0's close is good for D1 only.
    p = machine(user, [(D1, "198", "199", "196", "197"), (D2, "190", "199", "189", "197")])
    order = place(p, trigger="195", tif="DAY")
    assert order.expires_on == D1
    portfolio_advance(portfolio=p, to=D2)
    order.refresh_from_db()
    assert order.status == Order.Status.EXPIRED
    assert "A Day order" in order.reason and "Fri 25 Jul 2025" in order.reason
    assert not Transaction.objects.filter(order=order).exists()
    assert reserves_of(p).cash == 0


def test_a_gtc_order_expires_after_the_configured_days(user, history, settings):
    orders = dataclasses.replace(settings.PAPERTRADE.orders, gtc_days=3)
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, orders=orders)
    p = machine(
        user,
        [(D1, "198", "199", "196", "197"), (D2, "190", "199", "189", "197")],
    )
    order = place(p, trigger="195", tif="GTC")
    assert order.expires_on == D1  # 3 days on is Sun 27 Jul: its last session is Fri 25
    portfolio_advance(portfolio=p, to=D2)  # D2 (Mon 28) would fill it: too late
    order.refresh_from_db()
    assert order.status == Order.Status.EXPIRED
    assert not Transaction.objects.filter(order=order).exists()


def test_a_gtc_order_waits_past_a_day_orders_session(user, history):
    p = machine(user, [(D1, "198", "199", "196", "197"), (D2, "190", "199", "189", "197")])
    order = place(p, trigger="195", tif="GTC")
    portfolio_advance(portfolio=p, to=D2)
    assert fill_of(order).price == D("190")


# --- reserves -------------------------------------------------------------------------------
def test_a_stop_buy_that_gaps_past_its_reserve_and_the_cash_is_rejected_not_overdrawn(
    user, history
):
    p = machine(user, [(D1, "260", "262", "255", "258")])
    order = place(p, kind="STOP", quantity="40", trigger="210")
    assert order.reserved_cash == D("9240.00")  # 210 × 40 × 1.10
    portfolio_advance(portfolio=p, to=D1)
    order.refresh_from_db()
    assert order.status == Order.Status.REJECTED
    assert "$10,400.00" in order.reason and "$10,000.00 available" in order.reason
    p.refresh_from_db()
    assert p.cash == D("10000.00")
    assert not Transaction.objects.filter(kind="BUY").exists()
    assert reserves_of(p).cash == 0


def test_a_stop_buy_within_its_reserve_fills_above_its_stop(user, history):
    p = machine(user, [(D1, "215", "218", "214", "216")])
    order = place(p, kind="STOP", quantity="40", trigger="210")
    portfolio_advance(portfolio=p, to=D1)
    txn = fill_of(order)
    assert (txn.price, txn.price_rule) == (D("215"), "stop, gapped through")
    p.refresh_from_db()
    assert p.cash == D("1400.00")  # 10,000 − 8,600: the 640 left of the reserve is freed


def test_reserved_cash_cannot_be_withdrawn_or_spent_by_another_order(user, history):
    p = machine(user, [])
    place(p, quantity="40", trigger="200")  # reserves 8,000
    with pytest.raises(InsufficientFunds, match="\\$2,000.00 available \\(\\$8,000.00 more is"):
        portfolio_withdraw(portfolio=p, amount=D("2000.01"))
    with pytest.raises(InsufficientFunds):
        place(p, quantity="11", trigger="190")  # 2,090 > 2,000
    with pytest.raises(InsufficientFunds):
        portfolio_buy(portfolio=p, ticker="AAPL", quantity=D("11"))  # 11 × 200 = 2,200
    portfolio_withdraw(portfolio=p, amount=D("2000.00"))
    p.refresh_from_db()
    assert p.cash == D("8000.00")
    assert Order.objects.filter(portfolio=p).count() == 1


def test_bad_order_input_is_refused_with_a_message_and_writes_nothing(user, history):
    p = machine(user, [])
    for trigger, message in (("0", "greater than zero"), ("1.00001", "at most 4 decimal")):
        with pytest.raises(LedgerError, match=message):
            place(p, trigger=trigger)
    with pytest.raises(LedgerError, match="Choose the order type"):
        place(p, kind="TRAILING")
    with pytest.raises(LedgerError, match="Choose the time in force"):
        place(p, tif="IOC")
    assert not Order.objects.exists()


# --- cancelling -----------------------------------------------------------------------------------
def test_cancelling_releases_the_reserve_and_a_filled_order_says_so(user, history):
    p = machine(user, [(D1, "190", "199", "189", "197")])
    first = place(p, trigger="195")
    second = place(p, quantity="5", trigger="150")
    assert reserves_of(p).cash == D("2700.00")
    order_cancel(portfolio=p, order_id=second.pk)
    assert reserves_of(p).cash == D("1950.00")
    portfolio_advance(portfolio=p, to=D1)
    with pytest.raises(OrderClosed, match="This order has just filled: bought 10 AAPL at \\$190"):
        order_cancel(portfolio=p, order_id=first.pk)
    with pytest.raises(OrderClosed, match="already cancelled"):
        order_cancel(portfolio=p, order_id=second.pk)


def test_an_order_fills_at_most_once_the_database_says_so(user, history):
    p = machine(user, [(D1, "190", "199", "189", "197")])
    order = place(p, trigger="195")
    portfolio_advance(portfolio=p, to=D1)
    txn = fill_of(order)
    with pytest.raises(IntegrityError), transaction.atomic():
        Transaction.objects.create(
            portfolio=p,
            kind="BUY",
            ticker="AAPL",
            quantity=D("10"),
            price=D("190"),
            cash_change=D("-1900"),
            executed_at=txn.executed_at,
            price_source=Source.IMPORT,
            price_as_of=txn.price_as_of,
            price_was_stale=False,
            order=order,
        )
    assert check_orders().filled == 0  # nothing open: checking again fills nothing


def test_a_split_after_the_order_was_placed_cancels_it(user, history):
    p = machine(user, [(D1, "198", "199", "196", "197"), (D2, "19", "20", "18", "19.5")])
    order = place(p, trigger="195")
    split_aapl_on(D2)
    portfolio_advance(portfolio=p, to=D2)
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert "A split of AAPL took effect on Mon 28 Jul 2025" in order.reason
    assert reserves_of(p).cash == 0


# --- live portfolios: bars stored by a fetch or an import, and live quotes ---------------------
@pytest.fixture
def live_portfolio(user, history):
    return portfolio_create(owner=user, name="Live", opening_deposit=D("10000"))


def placed_before(order: Order, day: date) -> Order:
    """Say the order was placed the evening before ``day`` (a live order is placed now)."""
    Order.objects.filter(pk=order.pk).update(
        placed_at=day_start(day) - timedelta(hours=4), expires_on=day + timedelta(days=90)
    )
    order.refresh_from_db()
    return order


def test_a_live_order_fills_when_an_import_stores_the_bar_that_reaches_it(live_portfolio):
    order = placed_before(place(live_portfolio, trigger="195"), D1)
    bar("AAPL", D1, "198", "199", "194", "197")  # the signal checks the open orders
    txn = fill_of(order)
    assert (txn.price, txn.price_rule, txn.price_as_of) == (
        D("195"),
        "limit, touched",
        close_of(D1),
    )
    live_portfolio.refresh_from_db()
    assert live_portfolio.cash == D("8050.00")


def test_a_live_quote_newer_than_the_order_fills_a_marketable_limit_at_the_quote(
    live_portfolio,
):
    day = D3
    now = close_of(day) - timedelta(hours=3)  # 13:00 New York: the session is trading
    order = place(live_portfolio, trigger="195")
    Order.objects.filter(pk=order.pk).update(placed_at=now - timedelta(hours=1))
    # A quote taken before the order does not count; one taken after it does.
    upsert_daily_bars(
        ticker="AAPL",
        bars=[DailyBar(day, D("199"), D("200"), D("194"), D("194.50"), 1000)],
        source=Source.IMPORT,
        fetched_at=now - timedelta(hours=2),
    )
    assert check_orders(now=now).filled == 0
    upsert_daily_bars(
        ticker="AAPL",
        bars=[DailyBar(day, D("199"), D("200"), D("193"), D("194.25"), 1000)],
        source=Source.IMPORT,
        fetched_at=now - timedelta(minutes=5),
    )
    assert check_orders(now=now).filled == 1
    txn = fill_of(order)
    assert (txn.price, txn.price_rule) == (D("194.25"), "limit, at a live quote")
    assert txn.price_as_of == now - timedelta(minutes=5)


def test_tickers_with_open_orders_join_the_refresh_plan_before_watched_ones(live_portfolio):
    place(live_portfolio, trigger="195")
    plan = refresh_plan(now=datetime(2025, 8, 4, 23, tzinfo=UTC))
    reasons = {t.ticker: t.reason for t in plan.tickers}
    assert reasons["AAPL"] == "orders"


def test_a_time_machines_preview_prices_at_its_clock_and_shows_the_reserve(user, history, client):
    p = machine(user, [(D1, "250", "260", "240", "255")])  # D1: far above D0's 200
    client.force_login(user)
    url = f"/portfolios/{p.pk}/trade/preview/"
    query = {"side": "BUY", "ticker": "AAPL", "order_type": "LIMIT", "limit_price": "190"}
    body = client.get(url, {**query, "quantity": "10"}).content.decode()
    assert 'AAPL at <span class="price">$200.00</span>' in body  # D0's close, not D1's
    assert "the order reserves <strong>$1,900.00</strong>" in body
    body = client.get(url, {**query, "quantity": "60"}).content.decode()
    assert "It would reserve $11,400.00: $1,400.00 more than the available cash" in body
    body = client.get(url, {"side": "BUY", "ticker": "AAPL"}).content.decode()
    assert "$200.00" in body and "$255.00" not in body


def test_an_order_marketable_at_the_current_live_quote_fills_when_placed(live_portfolio):
    """A quote of a session still trading (stamped at its coming close) is the price now: a
    buy limit at or above it fills at once at the quote; one below it waits."""
    tomorrow = timezone.localdate() + timedelta(days=1)
    bar("AAPL", tomorrow, "199", "201", "197", "198.40")
    waiting = place(live_portfolio, quantity="1", trigger="198")
    assert waiting.status == Order.Status.OPEN
    order = place(live_portfolio, trigger="199")
    txn = fill_of(order)
    assert (txn.price, txn.price_rule) == (D("198.40"), "limit, at a live quote")
    assert txn.price_as_of <= timezone.now()
    live_portfolio.refresh_from_db()
    assert live_portfolio.cash == D("8016.00")  # 10,000 − 1,984: the order's 1,990 reserve freed
    assert reserves_of(live_portfolio).cash == D("198.00")  # the waiting one's


def test_the_command_checks_the_open_orders(live_portfolio):
    from io import StringIO

    from django.core.management import call_command

    order = placed_before(place(live_portfolio, trigger="195"), D1)
    upsert_daily_bars(
        ticker="AAPL",
        bars=[DailyBar(D1, D("190"), D("199"), D("189"), D("197"), 1000)],
        source=Source.IMPORT,
        fetched_at=timezone.now(),
    )  # stored without the signal: nothing checked it yet
    assert Order.objects.get(pk=order.pk).status == Order.Status.OPEN
    out = StringIO()
    call_command("check_orders", stdout=out)
    assert "1 orders filled" in out.getvalue()
    assert fill_of(order).price == D("190")


def test_a_portfolio_with_filled_and_open_orders_can_be_deleted(user, history):
    p = machine(user, [(D1, "190", "199", "189", "197")])
    place(p, trigger="195")
    place(p, quantity="1", trigger="100")
    portfolio_advance(portfolio=p, to=D1)
    assert Order.objects.filter(status=Order.Status.FILLED).count() == 1
    p.delete()
    assert not Order.objects.exists() and not Transaction.objects.exists()


# --- through the pages --------------------------------------------------------------------------
def test_the_trade_form_places_a_limit_order_and_refuses_one_without_its_price(
    user, history, client
):
    p = machine(user, [])
    client.force_login(user)
    url = f"/portfolios/{p.pk}/trade/"
    order = {"side": "BUY", "ticker": "AAPL", "quantity": "10", "order_type": "LIMIT"}
    response = client.post(url, order)
    assert response.status_code == 422
    assert "Give the limit price" in response.content.decode()
    response = client.post(url, {**order, "limit_price": "1e3"})
    assert response.status_code == 422
    assert not Order.objects.exists()
    # A stray stop price on a limit order is ignored; the limit is what counts.
    response = client.post(
        url,
        {**order, "limit_price": "195.50", "stop_price": "x", "time_in_force": "GTC"},
        follow=True,
    )
    assert response.redirect_chain[-1] == (f"/portfolios/{p.pk}/", 302)
    body = response.content.decode()
    assert "Order placed: Buy 10 AAPL, limit $195.50, GTC; it reserves $1,955.00" in body
    assert 'id="available-cash">$8,045.00</strong>' in body
    assert 'aria-label="Cancel order for AAPL"' in body
    placed = Order.objects.get()
    assert (placed.trigger, placed.time_in_force, placed.status) == (D("195.5"), "GTC", "OPEN")


def test_cancelling_through_the_page_and_a_filled_order_says_it_filled(
    user, other_user, history, client
):
    p = machine(user, [(D1, "190", "199", "189", "197")])
    first, second = place(p, trigger="195"), place(p, quantity="1", trigger="100")
    client.force_login(other_user)
    assert client.post(f"/portfolios/{p.pk}/orders/{second.pk}/cancel/").status_code == 404
    client.force_login(user)
    response = client.post(f"/portfolios/{p.pk}/orders/{second.pk}/cancel/", follow=True)
    assert "Cancelled: Buy 1 AAPL, limit $100.00, GTC. $100.00 is available again." in (
        response.content.decode()
    )
    portfolio_advance(portfolio=p, to=D1)
    response = client.post(f"/portfolios/{p.pk}/orders/{first.pk}/cancel/", follow=True)
    body = response.content.decode()
    assert "This order has just filled: bought 10 AAPL at $190.00 (limit, opened through)" in body
    assert Order.objects.get(pk=first.pk).status == Order.Status.FILLED
    assert "No open orders." in body


def test_a_rejected_order_shows_its_reason_on_the_page(user, history, client):
    p = machine(user, [(D1, "260", "262", "255", "258")])
    place(p, kind="STOP", quantity="40", trigger="210")
    portfolio_advance(portfolio=p, to=D1)
    client.force_login(user)
    body = client.get(f"/portfolios/{p.pk}/").content.decode()
    assert "<strong>Rejected</strong>" in body
    assert "the fill would cost $10,400.00, more than the $10,000.00 available" in body


def test_an_order_that_expired_before_a_split_expires_rather_than_being_cancelled(user, history):
    # A Day order of D1; no bar of D1 is stored; AAPL splits on D2.
    p = machine(user, [(D2, "19", "20", "18", "19.5")])
    order = place(p, trigger="195", tif="DAY")
    split_aapl_on(D2)
    portfolio_advance(portfolio=p, to=D2)
    order.refresh_from_db()
    assert order.status == Order.Status.EXPIRED
    assert "No bar of AAPL was stored for Fri 25 Jul 2025" in order.reason


def test_moving_the_clock_says_what_became_of_the_orders(user, history, client):
    p = machine(user, [(D1, "198", "199", "196", "197"), (D2, "190", "199", "189", "197")])
    place(p, trigger="195", tif="GTC")  # fills on D2
    place(p, quantity="1", trigger="150", tif="DAY")  # expires after D1
    client.force_login(user)
    response = client.post(f"/portfolios/{p.pk}/clock/", {"to": "2025-07-28"}, follow=True)
    assert (
        "The clock is at Mon 28 Jul 2025. Orders on the way: 1 filled, 1 expired."
        in response.content.decode()
    )


def test_a_day_order_placed_before_the_open_is_good_for_that_session(live_portfolio):
    order = place(live_portfolio, trigger="195", tif="DAY")
    # Say it was placed at 08:00 New York on D1, before the open: D1's bar may fill it.
    early = day_start(D1) + timedelta(hours=8)
    Order.objects.filter(pk=order.pk).update(placed_at=early)
    from marketdata.port import get_price_port
    from portfolios.orders import last_session

    assert last_session("DAY", early, get_price_port()) == D1
    Order.objects.filter(pk=order.pk).update(expires_on=D1)
    bar("AAPL", D1, "198", "199", "194", "197")
    assert fill_of(order).price == D("195")


def test_a_quote_stored_before_the_close_never_expires_a_day_order(live_portfolio):
    """A bar fetched during its session is a quote, even read after the close: only the bar
    fetched after the close says the session did not reach the order."""
    order = placed_before(place(live_portfolio, trigger="190", tif="DAY"), D1)
    Order.objects.filter(pk=order.pk).update(expires_on=D1)
    upsert_daily_bars(
        ticker="AAPL",
        bars=[DailyBar(D1, D("198"), D("199"), D("195"), D("196"), 1000)],
        source=Source.IMPORT,
        fetched_at=close_of(D1) - timedelta(hours=5),  # 11:00 New York
    )
    assert check_orders(now=close_of(D1) + timedelta(minutes=30)).expired == 0
    assert Order.objects.get(pk=order.pk).status == Order.Status.OPEN
    upsert_daily_bars(  # the final bar: the afternoon went no lower than 194
        ticker="AAPL",
        bars=[DailyBar(D1, D("198"), D("199"), D("194"), D("196.50"), 1000)],
        source=Source.IMPORT,
        fetched_at=close_of(D1) + timedelta(hours=2),
    )
    assert check_orders(now=close_of(D1) + timedelta(hours=3)).expired == 1


def test_an_order_too_small_to_reserve_a_cent_and_a_wild_price_are_refused(user, history, client):
    p = machine(user, [])
    with pytest.raises(LedgerError, match="comes to less than a cent"):
        place(p, quantity="1", trigger="0.004")
    client.force_login(user)
    response = client.post(
        f"/portfolios/{p.pk}/trade/",
        {"side": "BUY", "ticker": "AAPL", "quantity": "1", "order_type": "LIMIT",
         "limit_price": "0.004"},
    )  # fmt: skip
    assert response.status_code == 422 and "less than a cent" in response.content.decode()
    preview = client.get(
        f"/portfolios/{p.pk}/trade/preview/",
        {"side": "BUY", "ticker": "AAPL", "quantity": "1", "order_type": "LIMIT",
         "limit_price": "100000000000000000000000000"},
    )  # fmt: skip
    assert preview.status_code == 200
    assert "The limit price may be at most 1,000,000." in preview.content.decode()
    assert not Order.objects.exists()


def test_an_order_rejected_the_moment_it_is_placed_says_why(live_portfolio, client):
    tomorrow = timezone.localdate() + timedelta(days=1)
    bar("AAPL", tomorrow, "199", "201", "197", "198.40")  # a quote of a session under way
    client.force_login(live_portfolio.owner)
    response = client.post(
        f"/portfolios/{live_portfolio.pk}/trade/",
        {"side": "BUY", "ticker": "AAPL", "quantity": "60", "order_type": "STOP",
         "stop_price": "100", "time_in_force": "DAY"},
    )  # fmt: skip
    body = response.content.decode()
    assert response.status_code == 422
    assert "The order was rejected: At $198.40 (stop, at a live quote) the fill would cost" in body
    assert Order.objects.get().status == Order.Status.REJECTED
    live_portfolio.refresh_from_db()
    assert live_portfolio.cash == D("10000.00")
