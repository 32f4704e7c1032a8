"""Concurrent writes on one portfolio can never overdraw cash or oversell (PRODUCT §2.7).

These race real database connections against each other (threads, then separate OS processes)
and need real row locks, so they run on PostgreSQL only. A ``threading.Barrier`` releases every
racer at once; each racer has opened its connection beforehand so the race is on the lock, not
on connecting.
"""

import contextlib
import os
import subprocess
import sys
import threading
import time
from datetime import date
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from marketdata.port import close_of
from marketdata.price_cache import forget_current_prices
from marketdata.tests.factories import store_bars
from portfolios.exceptions import InsufficientFunds, InsufficientShares, LedgerError
from portfolios.models import Holding, Portfolio, Transaction
from portfolios.services import (
    ledger_differences,
    portfolio_buy,
    portfolio_create,
    portfolio_deposit,
    portfolio_sell,
    portfolio_withdraw,
    trade_quote,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RACERS = 8
AAPL = Decimal("186.40")  # the aapl fixture's last close


def race(portfolio: Portfolio, action, racers: int = RACERS) -> list:
    """Run ``action(portfolio, i)`` in ``racers`` threads released together, each with its own
    copy of ``portfolio`` and its own connection; return what each returned or raised."""
    barrier = threading.Barrier(racers)
    results: list = [None] * racers

    def run(i: int, pk: int) -> None:
        try:
            mine = Portfolio.objects.get(pk=pk)  # opens this thread's own connection
            barrier.wait(timeout=30)
            results[i] = action(mine, i)
        except Exception as exc:  # every outcome is inspected by the test
            results[i] = exc
        finally:
            connection.close()

    pk = portfolio.pk
    threads = [threading.Thread(target=run, args=(i, pk)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a racer hung"
    return results


def outcomes(results: list, refusal: type[LedgerError]) -> tuple[list, list]:
    """Split results into successes and refusals of the expected kind; anything else fails."""
    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, refusal)]
    assert unexpected == [], f"racers failed in unexpected ways: {unexpected!r}"
    done = [r for r in results if isinstance(r, Transaction)]
    refused = [r for r in results if isinstance(r, refusal)]
    assert len(done) + len(refused) == len(results)
    return done, refused


@pytest.fixture
def racing(user, aapl):
    """A portfolio with $1,000.00: enough for 5 shares of AAPL at $186.40, not 6. The price is
    warmed into the cache so the racers reach the lock together."""
    portfolio = portfolio_create(owner=user, name="Race", opening_deposit=Decimal("1000.00"))
    trade_quote(ticker="AAPL", quantity=Decimal("1"))
    return portfolio


def fresh(portfolio: Portfolio) -> Portfolio:
    return Portfolio.objects.get(pk=portfolio.pk)


def test_parallel_buys_never_overdraw_cash(racing):
    results = race(
        racing, lambda p, _: portfolio_buy(portfolio=p, ticker="AAPL", quantity=Decimal("1"))
    )

    done, refused = outcomes(results, InsufficientFunds)
    portfolio = fresh(racing)
    buys = portfolio.transactions.filter(kind=Transaction.Kind.BUY).count()
    assert (len(done), len(refused), buys) == (5, 3, 5)
    assert portfolio.cash >= 0
    assert buys * AAPL == Decimal("1000.00") - portfolio.cash
    assert portfolio.cash == Decimal("68.00")
    assert Holding.objects.get(portfolio=portfolio, ticker="AAPL").quantity == Decimal(buys)
    # Every refusal was judged against the balance the successful buys left behind.
    assert {(e.available, e.required) for e in refused} == {(Decimal("68.00"), AAPL)}
    assert ledger_differences(portfolio=portfolio) == []


def test_parallel_sells_never_oversell(racing):
    portfolio_buy(portfolio=racing, ticker="AAPL", quantity=Decimal("5"))  # $932.00

    results = race(
        racing, lambda p, _: portfolio_sell(portfolio=p, ticker="AAPL", quantity=Decimal("1"))
    )

    done, refused = outcomes(results, InsufficientShares)
    portfolio = fresh(racing)
    sells = portfolio.transactions.filter(kind=Transaction.Kind.SELL).count()
    assert (len(done), len(refused), sells) == (5, 3, 5)
    assert not Holding.objects.filter(portfolio=portfolio).exists()
    assert {e.held for e in refused} == {Decimal("0")}
    assert portfolio.cash == Decimal("1000.00")
    assert portfolio.realized_gain == Decimal("0.00")
    assert ledger_differences(portfolio=portfolio) == []


def test_parallel_withdrawals_never_overdraw_cash(racing):
    results = race(racing, lambda p, _: portfolio_withdraw(portfolio=p, amount=Decimal("300.00")))

    done, refused = outcomes(results, InsufficientFunds)
    portfolio = fresh(racing)
    withdrawals = portfolio.transactions.filter(kind=Transaction.Kind.WITHDRAWAL).count()
    assert (len(done), len(refused), withdrawals) == (3, 5, 3)
    assert portfolio.cash == Decimal("100.00")
    assert withdrawals * Decimal("300.00") == Decimal("1000.00") - portfolio.cash
    assert {e.available for e in refused} == {Decimal("100.00")}
    assert ledger_differences(portfolio=portfolio) == []


def test_parallel_deposits_are_all_counted(racing):
    results = race(racing, lambda p, _: portfolio_deposit(portfolio=p, amount=Decimal("10.00")))

    done, _ = outcomes(results, LedgerError)
    portfolio = fresh(racing)
    assert len(done) == RACERS
    assert portfolio.cash == Decimal("1000.00") + RACERS * Decimal("10.00")
    assert portfolio.net_contributions == portfolio.cash
    assert ledger_differences(portfolio=portfolio) == []


def test_parallel_buys_and_sells_of_one_position_stay_consistent(racing, ibm):
    portfolio_buy(portfolio=racing, ticker="AAPL", quantity=Decimal("3"))  # leaves $440.80

    def buy_or_sell(p, i):
        if i % 2:
            return portfolio_sell(portfolio=p, ticker="AAPL", quantity=Decimal("1"))
        return portfolio_buy(portfolio=p, ticker="IBM", quantity=Decimal("1"))

    results = race(racing, buy_or_sell)

    unexpected = [
        r
        for r in results
        if isinstance(r, Exception) and not isinstance(r, InsufficientFunds | InsufficientShares)
    ]
    assert unexpected == []
    portfolio = fresh(racing)
    assert portfolio.cash >= 0
    assert portfolio.transactions.filter(kind="SELL").count() == 3
    assert ledger_differences(portfolio=portfolio) == []


def test_the_ledger_replays_a_buy_that_waited_on_the_lock_after_the_sell_that_held_it(user):
    store_bars("ACME", [(date(2023, 11, 9), "100.0000")])
    portfolio = portfolio_create(owner=user, name="Order", opening_deposit=Decimal("5000.00"))
    portfolio_buy(portfolio=portfolio, ticker="ACME", quantity=Decimal("10"))  # $1,000
    store_bars("ACME", [(date(2023, 11, 10), "120.0000")])
    forget_current_prices(["ACME"])
    trade_quote(ticker="ACME", quantity=Decimal("1"))  # warm the cache
    failures: list = []

    def buy_five() -> None:
        try:
            portfolio_buy(portfolio=fresh(portfolio), ticker="ACME", quantity=Decimal("5"))
        except Exception as exc:
            failures.append(exc)
        finally:
            connection.close()

    buyer = threading.Thread(target=buy_five)
    with transaction.atomic():
        Portfolio.objects.select_for_update().get(pk=portfolio.pk)  # hold the lock
        buyer.start()  # reads the clock, then waits for the lock
        wait_for_a_lock_wait()
        portfolio_sell(portfolio=fresh(portfolio), ticker="ACME", quantity=Decimal("10"))
    buyer.join(timeout=30)

    assert failures == []
    portfolio = fresh(portfolio)
    assert portfolio.realized_gain == Decimal("200.00")
    assert Holding.objects.get(portfolio=portfolio).cost_basis == Decimal("600.00")
    assert ledger_differences(portfolio=portfolio) == []


def wait_for_a_lock_wait(deadline_seconds: float = 15) -> None:
    """Block until some session waits for a lock (pg_locks is live, unlike pg_stat_activity
    inside a transaction)."""
    deadline = time.monotonic() + deadline_seconds
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    pytest.fail("the racer never waited for the portfolio lock")


# --- separate OS processes -----------------------------------------------------------------
CHILD = """
import sys
from decimal import Decimal
from portfolios.exceptions import LedgerError
from portfolios.models import Portfolio
from portfolios.services import portfolio_buy
portfolio = Portfolio.objects.get(pk={pk})
print("ready", flush=True)
sys.stdin.readline()
try:
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("1"))
    print("result BUY", flush=True)
except LedgerError as exc:
    print("result " + type(exc).__name__, flush=True)
"""


def child_database_url() -> str:
    """A DATABASE_URL for the test database pytest-django created (not the dev database)."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


def test_buys_from_separate_processes_never_overdraw_cash(racing):
    assert connection.settings_dict["NAME"].startswith("test_")
    env = {**os.environ, "DATABASE_URL": child_database_url()}
    manage = str(settings.BASE_DIR / "manage.py")
    code = CHILD.format(pk=racing.pk)
    children = [
        subprocess.Popen(
            [sys.executable, manage, "shell", "--no-imports", "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(settings.BASE_DIR),
        )
        for _ in range(RACERS)
    ]
    barrier = threading.Barrier(RACERS)
    outputs: list = [None] * RACERS

    def drive(i: int, child: subprocess.Popen) -> None:
        ready = child.stdout.readline().strip() == "ready"
        with contextlib.suppress(threading.BrokenBarrierError):  # a child that broke fails below
            barrier.wait(timeout=60)
        if ready:
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs[i] = child.communicate(timeout=60)

    drivers = [threading.Thread(target=drive, args=(i, c)) for i, c in enumerate(children)]
    try:
        for driver in drivers:
            driver.start()
        for driver in drivers:
            driver.join(timeout=120)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()

    results = []
    for child, (out, err) in zip(children, outputs, strict=True):
        lines = [line for line in out.splitlines() if line.startswith("result ")]
        assert child.returncode == 0 and len(lines) == 1, f"a child failed:\n{out}\n{err}"
        results.append(lines[0].removeprefix("result "))
    assert sorted(results) == ["BUY"] * 5 + ["InsufficientFunds"] * 3
    portfolio = fresh(racing)
    buys = portfolio.transactions.filter(kind=Transaction.Kind.BUY).count()
    assert buys == 5
    assert portfolio.cash == Decimal("1000.00") - buys * AAPL
    assert Holding.objects.get(portfolio=portfolio, ticker="AAPL").quantity == Decimal("5")
    assert ledger_differences(portfolio=portfolio) == []


def test_applying_a_split_races_trades_and_itself_without_a_double_or_a_lost_share(user):
    """Four racers apply a 2-for-1 split while four sell one share each (at post-split prices,
    bought before it): one SPLIT entry, every sell once, and the ledger agrees."""
    from django.utils import timezone

    from marketdata.models import CorporateAction
    from marketdata.port import ActionKind, Source
    from portfolios.services import apply_corporate_actions

    portfolio = portfolio_create(owner=user, name="Race", opening_deposit=Decimal("5000"))
    store_bars("RACE", [(date(2024, 3, 4), "100.0000")])
    forget_current_prices(["RACE"])
    portfolio_buy(portfolio=portfolio, ticker="RACE", quantity=Decimal("10"))
    store_bars("RACE", [(date(2024, 3, 5), "50.0000")])
    forget_current_prices(["RACE"])
    CorporateAction.objects.create(  # recorded without the job after it: the racers apply it
        ticker="RACE",
        kind=ActionKind.SPLIT,
        date=date(2024, 3, 5),
        value=Decimal("2"),
        source=Source.IMPORT,
        fetched_at=timezone.now(),
    )

    def act(mine: Portfolio, i: int):
        if i % 2:
            return apply_corporate_actions(tickers=["RACE"])
        return portfolio_sell(portfolio=mine, ticker="RACE", quantity=Decimal("1"))

    results = race(portfolio, act)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.splits for r in results if not isinstance(r, Transaction)) == 1
    assert Transaction.objects.filter(portfolio=portfolio, kind="SPLIT").count() == 1
    assert Transaction.objects.filter(portfolio=portfolio, kind="SELL").count() == RACERS // 2
    holding = Holding.objects.get(portfolio=portfolio, ticker="RACE")
    assert holding.quantity == Decimal("20") - RACERS // 2
    assert ledger_differences(portfolio=Portfolio.objects.get(pk=portfolio.pk)) == []


def test_moving_a_time_machines_clock_races_its_trades_in_time_order(user):
    """Four racers move the clock a day on, four buy at the clock's close: the clock moves
    once, and every buy fills at the close of the clock it was written under, never at a
    price of a day the clock has left."""
    from portfolios.services import clock_target, portfolio_advance

    days = [date(2025, 7, 24), date(2025, 7, 25), date(2025, 7, 28)]
    store_bars("TIME", [(d, f"{100 + i}.0000") for i, d in enumerate(days)])
    machine = portfolio_create(
        owner=user, name="Racing", opening_deposit=Decimal("10000"), starts_on=days[0]
    )

    def act(mine: Portfolio, i: int):
        if i % 2:
            return portfolio_advance(portfolio=mine, to=clock_target(mine.clock, "day"))
        return portfolio_buy(portfolio=mine, ticker="TIME", quantity=Decimal("1"))

    results = race(machine, act)
    refused = [r for r in results if isinstance(r, LedgerError)]
    moved = [r for r in results if isinstance(r, Portfolio)]
    bought = [r for r in results if isinstance(r, Transaction)]
    assert len(refused) + len(moved) + len(bought) == RACERS, results
    assert len(moved) == 1  # the others found the clock already there: forward only
    assert Portfolio.objects.get(pk=machine.pk).clock == days[1]
    for buy in Transaction.objects.filter(portfolio=machine, kind="BUY"):
        assert buy.executed_at == buy.price_as_of  # filled at the close of its own clock
    times = list(
        Transaction.objects.filter(portfolio=machine)
        .order_by("id")
        .values_list("executed_at", flat=True)
    )
    assert times == sorted(times)  # the ledger is in time order
    assert ledger_differences(portfolio=Portfolio.objects.get(pk=machine.pk)) == []


def test_limit_buys_a_withdrawal_and_the_bar_that_fills_them_never_overdraw(user):
    """PRODUCT §11.2: ten limit buys, a withdrawal and two checks of the orders against the bar
    that fills them, all released together. The reserves are read under the lock, so whatever
    the order of arrival: cash never goes below zero, the withdrawal and the reserves never
    together exceed the cash, and each order fills at most once."""
    from datetime import timedelta

    from marketdata.models import PriceHistory
    from marketdata.port import session_date
    from portfolios.models import Order
    from portfolios.orders import check_orders, order_place
    from portfolios.services import reserves_of

    today = session_date(timezone.now())
    store_bars("AAPL", [(today - timedelta(days=1), "200.0000")])
    forget_current_prices(["AAPL"])
    portfolio = portfolio_create(owner=user, name="Orders race", opening_deposit=Decimal("10000"))
    trade_quote(ticker="AAPL", quantity=Decimal("1"))  # warm the price: the race is on the lock
    # The next session's bar, as the checks will see it after its close: it opens at 198 and
    # trades down to 190, so a buy limit at 195 placed now fills at 195.
    nxt = today + timedelta(days=1)
    PriceHistory.objects.create(
        ticker="AAPL",
        timestamp=close_of(nxt),
        open=Decimal("198"),
        high=Decimal("199"),
        low=Decimal("190"),
        close=Decimal("196"),
        volume=1000,
        source="import",
        fetched_at=timezone.now(),
    )
    after_close = close_of(nxt) + timedelta(hours=1)

    def act(p: Portfolio, i: int):
        if i < 10:  # 5 shares at 195 reserve $975.00 each: ten of them $9,750.00
            return order_place(
                portfolio=p,
                side="BUY",
                kind="LIMIT",
                ticker="AAPL",
                quantity=Decimal("5"),
                trigger=Decimal("195"),
                time_in_force="GTC",
            )
        if i == 10:  # with all ten reserved, only $250.00 is free
            return portfolio_withdraw(portfolio=p, amount=Decimal("1000.00"))
        return check_orders(portfolio=p, now=after_close)

    results = race(portfolio, act, racers=13)
    check_orders(portfolio=portfolio, now=after_close)  # what the racing checks came too early for

    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, LedgerError)]
    assert unexpected == [], unexpected
    p = fresh(portfolio)
    placed = Order.objects.filter(portfolio=p)
    filled = placed.filter(status=Order.Status.FILLED)
    buys = Transaction.objects.filter(portfolio=p, kind=Transaction.Kind.BUY)
    withdrawn = -sum(t.cash_change for t in p.transactions.filter(kind=Transaction.Kind.WITHDRAWAL))
    # Every order placed filled, once, at the limit: one BUY each.
    assert filled.count() == placed.count() > 0
    assert sorted(buys.values_list("order_id", flat=True)) == sorted(
        filled.values_list("pk", flat=True)
    )
    assert set(buys.values_list("price", "price_rule")) == {(Decimal("195"), "limit, touched")}
    # Never overdrawn: what was withdrawn and spent fits in the deposit; not all eleven fit.
    assert p.cash >= 0
    assert p.cash == Decimal("10000.00") - withdrawn - Decimal("975.00") * filled.count()
    assert withdrawn + Decimal("975.00") * placed.count() <= Decimal("10000.00")
    assert reserves_of(p).cash == 0
    assert ledger_differences(portfolio=p) == []
    assert Holding.objects.get(portfolio=p, ticker="AAPL").quantity == 5 * filled.count()
