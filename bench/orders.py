"""Orders that wait (PRODUCT §11): what placing an order costs, what checking the open orders
costs when a refresh stores the day's bars, and the portfolio page with open orders.

    python bench/orders.py [--portfolios 200] [--orders 5] [--tickers 100] [--rounds 3] [--quick]

In process, on PostgreSQL and Redis, DEBUG off. ``--portfolios`` live portfolios each place
``--orders`` buy limits (through ``order_place``) on random tickers among ``--tickers``, the
limits spread around the last close so that about half are reached by the next bar. The orders
are then dated the evening before that bar's session (a live order is placed now, and only a
later session's bar may fill it), the bars of every ticker are stored at once and announced,
as a bulk refresh does, and the ``market_data_stored`` listener checks them: that is timed,
with its queries. Each round starts from fresh orders.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402


class QueryCount:
    """Count the SQL statements run inside the block (no log of them: a check of a thousand
    orders runs more than Django's 9,000-entry query log holds)."""

    def __enter__(self):
        from django.db import connection

        self.count = 0
        self._cm = connection.execute_wrapper(self)
        self._cm.__enter__()
        return self

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--portfolios", type=int, default=200)
    parser.add_argument("--orders", type=int, default=5)
    parser.add_argument("--tickers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round, 50 portfolios")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.portfolios = 1, 50
    c.setup(PAPERTRADE_PLAIN_STATIC="1")  # the page names its static files without a manifest
    c.reset_state()

    from django.test import Client

    from marketdata.bars import DailyBar
    from marketdata.models import PriceHistory
    from marketdata.port import Source, close_of, day_start, get_price_port
    from marketdata.price_cache import announce_stored
    from marketdata.storage import upsert_daily_bars
    from portfolios.models import Order, Transaction
    from portfolios.orders import order_place
    from portfolios.services import ledger_repair, portfolio_create

    tickers = c.ticker_names(args.tickers, prefix="O")
    days = c.sessions(30)
    history, new_day = days[:-1], days[-1]
    c.seed_bars({t: history for t in tickers})
    last_close = {t: p.price for t, p in get_price_port().get_current_prices(tickers).items()}
    rng = random.Random(18)
    owners = [c.make_user(f"bench-orders-{i}") for i in range(args.portfolios)]
    portfolios = [
        portfolio_create(owner=o, name="Orders", opening_deposit=Decimal("1000000")) for o in owners
    ]

    def place_all() -> tuple[list[float], int]:
        took, queries = [], 0
        for p in portfolios:
            for _ in range(args.orders):
                t = rng.choice(tickers)
                limit = (last_close[t] * Decimal(rng.uniform(0.97, 1.0))).quantize(Decimal("0.01"))
                start = time.perf_counter()
                with QueryCount() as q:
                    order_place(
                        portfolio=p,
                        side="BUY",
                        kind="LIMIT",
                        ticker=t,
                        quantity=Decimal("10"),
                        trigger=limit,
                        time_in_force="GTC",
                    )
                took.append((time.perf_counter() - start) * 1000)
                queries = q.count
        Order.objects.update(placed_at=day_start(new_day) - timedelta(hours=4))
        return took, queries

    def store_new_bars() -> tuple[float, int, int]:
        """Store every ticker's bar of the new session (it dips 2 % under its open) and
        announce it: the listener checks the open orders. Returns ms, queries, fills."""
        PriceHistory.objects.filter(timestamp=close_of(new_day)).delete()
        for t in tickers:
            close = last_close[t]
            upsert_daily_bars(
                ticker=t,
                bars=[
                    DailyBar(
                        new_day,
                        close,
                        close * Decimal("1.01"),
                        (close * Decimal("0.985")).quantize(Decimal("0.0001")),
                        close,
                        1000,
                    )
                ],
                source=Source.IMPORT,
                fetched_at=close_of(new_day),
            )
        start = time.perf_counter()
        with QueryCount() as q:
            announce_stored(tickers)
        took = (time.perf_counter() - start) * 1000
        fills = Order.objects.filter(status=Order.Status.FILLED).count()
        return took, q.count, fills

    place_ms: list[float] = []
    check = []
    for _ in range(args.rounds):
        took, place_queries = place_all()
        place_ms.extend(took)
        open_before = Order.objects.filter(status=Order.Status.OPEN).count()
        ms, queries, fills = store_new_bars()
        check.append((ms, queries, fills, open_before))
        # The next round: fresh orders on fresh portfolios' cash (the fills spent some).
        Transaction.objects.filter(order__isnull=False).delete()
        Order.objects.all().delete()
        for p in portfolios:
            ledger_repair(portfolio=p)

    # The portfolio page with 20 open orders and a few closed.
    page_owner = owners[0]
    page_portfolio = portfolios[0]
    for i in range(20):
        t = tickers[i]
        order_place(
            portfolio=page_portfolio,
            side="BUY",
            kind="LIMIT",
            ticker=t,
            quantity=Decimal("1"),
            trigger=(last_close[t] * Decimal("0.5")).quantize(Decimal("0.01")),
            time_in_force="GTC",
        )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(page_owner)
    url = f"/portfolios/{page_portfolio.pk}/"
    client.get(url)
    with QueryCount() as q:
        assert client.get(url).status_code == 200
    page_queries = q.count
    page_s = c.summarize(c.time_calls(lambda: client.get(url), 30))

    place_s = c.summarize(place_ms)
    per_round = [ms for ms, *_ in check]
    total_orders = args.portfolios * args.orders
    cond = c.conditions()
    lines = [
        f"{args.portfolios} live portfolios × {args.orders} buy limits on {args.tickers} tickers "
        f"({total_orders:,} open orders), {args.rounds} round(s)",
        c.stat_line(f"order_place ({place_queries} queries)", place_s),
        *(
            f"round {i + 1}: {args.tickers} bars stored and announced, {open_before:,} open "
            f"orders checked in {c.fmt_ms(ms)} ({queries} queries, {fills:,} filled)"
            for i, (ms, queries, fills, open_before) in enumerate(check)
        ),
        f"check per open order: {c.fmt_ms(min(per_round) / total_orders)} (best round)",
        f"portfolio page with 20 open orders: {page_queries} queries (session and user "
        "included), " + c.stat_line("GET", page_s),
    ]
    c.print_block("Orders that wait", cond, lines)
    c.save(
        "orders",
        {
            "rows": [
                c.row(
                    f"orders: {total_orders:,} open orders checked as {args.tickers} bars "
                    "arrive; placing one",
                    "— (no target)",
                    f"check {c.fmt_ms(min(per_round))} (best of {args.rounds}); place p50 "
                    f"{c.fmt_ms(place_s['p50'])}; page with 20 open orders {page_queries} q",
                    None,
                ),
            ],
            "lines": lines,
            "conditions": cond,
            "place": place_s,
            "check": [{"ms": ms, "queries": q_, "filled": f, "open": o} for ms, q_, f, o in check],
            "page_queries": page_queries,
            "page": page_s,
        },
    )


if __name__ == "__main__":
    main()
