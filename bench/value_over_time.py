"""Value over time (PRODUCT §10.1): a portfolio's daily value series with 20 tickers, five years
of daily bars and 1,000 ledger entries, cold (built: the ledger and the closes, two queries)
and warm (from the cache); and the number of queries of a build whatever the range or the
number of tickers.

    python bench/value_over_time.py [--rounds 5] [--cold 40] [--warm 300] [--quick]

In process, on PostgreSQL and Redis, DEBUG off. The portfolio is a time machine made through
the services (portfolio_create, portfolio_advance, portfolio_buy/sell, deposits and
withdrawals), its clock at the last session. "Cold" is ``value_series`` after the portfolio's
series was deleted from the cache (untimed): the cache look-ups, the two queries, the build and
the cache write; ``build_series`` alone is timed too.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

TICKERS = 20
YEARS = 5
SESSIONS_A_YEAR = 252


def counts(fn) -> tuple[int, int]:
    """(SQL queries, cache round-trips) of one call of ``fn``."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from marketdata.testing.cache_calls import CacheCalls

    with CacheCalls() as spy, CaptureQueriesContext(connection) as q:
        fn()
    return len(q.captured_queries), len(spy.calls)


def fill_ledger(owner, name: str, tickers: list[str], days: list, entries: int, seed: int):
    """A time-machine portfolio from ``days[0]`` with a big deposit, then ``entries - 1`` more
    entries spread over ``days`` (one per session at most; buys mostly, some sells, a few
    deposits and withdrawals) made through the services; its clock ends at ``days[-1]``."""
    from portfolios import services
    from portfolios.exceptions import InsufficientFunds
    from portfolios.models import Holding

    rng = random.Random(seed)
    portfolio = services.portfolio_create(
        owner=owner, name=name, opening_deposit=Decimal("10000000.00"), starts_on=days[0]
    )
    kinds = {"DEPOSIT": 1, "WITHDRAWAL": 0, "BUY": 0, "SELL": 0}
    last = len(days) - 1
    for k in range(1, entries):
        day = days[round(k * last / (entries - 1))]
        if day > portfolio.clock:
            services.portfolio_advance(portfolio=portfolio, to=day)
        r = rng.random()
        ticker = tickers[k - 1] if k <= len(tickers) else rng.choice(tickers)
        if k > len(tickers) and r < 0.02:
            services.portfolio_deposit(
                portfolio=portfolio, amount=Decimal(rng.randint(10, 200) * 1000)
            )
            kinds["DEPOSIT"] += 1
            continue
        if k > len(tickers) and r < 0.04 and portfolio.cash > 100_000:
            services.portfolio_withdraw(
                portfolio=portfolio, amount=Decimal(rng.randint(10, 50) * 1000)
            )
            kinds["WITHDRAWAL"] += 1
            continue
        if k > len(tickers) and r < 0.20:
            held = Holding.objects.filter(portfolio=portfolio, ticker=ticker).first()
            if held is not None:
                quantity = min(held.quantity, Decimal(rng.randint(1, 40)))
                services.portfolio_sell(portfolio=portfolio, ticker=ticker, quantity=quantity)
                kinds["SELL"] += 1
                continue
        try:
            services.portfolio_buy(
                portfolio=portfolio, ticker=ticker, quantity=Decimal(rng.randint(5, 60))
            )
            kinds["BUY"] += 1
        except InsufficientFunds:
            services.portfolio_deposit(portfolio=portfolio, amount=Decimal("1000000.00"))
            kinds["DEPOSIT"] += 1
    if portfolio.clock < days[-1]:
        services.portfolio_advance(portfolio=portfolio, to=days[-1])
    problems = services.ledger_differences(portfolio=portfolio)
    if problems:
        raise SystemExit(f"bench: the {name} ledger disagrees with its totals: {problems[:3]}")
    return portfolio, kinds


def captured_sql(fn) -> list[str]:
    """The SQL of each query ``fn`` makes, its parameters in place."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as q:
        fn()
    return [query["sql"] for query in q.captured_queries]


def explain_ms(fn) -> list[float]:
    """PostgreSQL's execution time of each query ``fn`` makes (EXPLAIN ANALYZE, run again)."""
    from django.db import connection

    out = []
    with connection.cursor() as cursor:
        for sql in captured_sql(fn):
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
            out.append(cursor.fetchone()[0][0]["Execution Time"])
    return out


def profile(fn, n: int, top: int = 14) -> list[str]:
    """cProfile of ``n`` calls of ``fn``: the functions with the most cumulative time."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return [line for line in out.getvalue().splitlines() if line.strip()][-(top + 1) :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cold", type=int, default=40, help="cold calls a round")
    parser.add_argument("--warm", type=int, default=300, help="warm calls a round")
    parser.add_argument("--entries", type=int, default=1000, help="ledger entries")
    parser.add_argument(
        "--quick", action="store_true", help="2 rounds of fewer calls (the data is the same)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also print cProfile of a cold and a warm call"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.cold, args.warm = 2, 20, 100

    c.setup()
    c.reset_state()

    from django.db import connection
    from django_redis import get_redis_connection

    from marketdata.port import get_price_port
    from portfolios import performance

    days = c.sessions(SESSIONS_A_YEAR * YEARS)
    tickers = c.ticker_names(TICKERS, prefix="V")
    stored = c.seed_bars({t: days for t in tickers})
    owner = c.make_user("bench-value")
    t0 = time.monotonic()
    portfolio, kinds = fill_ledger(owner, "Twenty", tickers, days, args.entries, seed=20)
    fill_seconds = time.monotonic() - t0
    # For the query count only: one ticker over the five years, and 20 over the last quarter.
    one, _ = fill_ledger(owner, "One", tickers[:1], days, 40, seed=1)
    short, _ = fill_ledger(owner, "Quarter", tickers, days[-63:], 40, seed=3)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE portfolios_transaction")
    ledger = portfolio.transactions.count()
    cond = c.conditions()
    cond["dataset"] = (
        f"{TICKERS} tickers × {len(days):,} daily bars ({days[0]} to {days[-1]}) = {stored:,}; "
        f"a time-machine portfolio of {ledger:,} ledger entries "
        f"({', '.join(f'{n} {k.lower()}s' for k, n in kinds.items())}) made through the "
        f"services in {fill_seconds:.0f} s, clock at {portfolio.clock}"
    )

    redis = get_redis_connection("default")
    port = get_price_port()
    end = performance.series_end(portfolio)

    def drop_series() -> None:
        keys = redis.keys("*value-series*")
        if keys:
            redis.delete(*keys)

    def cold() -> None:
        performance.value_series(portfolio, prices=port)

    def build() -> None:
        performance.build_series(portfolio, port, end)

    warm = cold  # the same call; warm when the entry is there

    points = performance.value_series(portfolio, prices=port)
    if len(points) != len(days) or points[-1].day != days[-1]:
        raise SystemExit(f"bench: {len(points)} points to {points[-1].day}; expected {len(days)}")
    # Where a build's time goes: its two queries alone (as build_series makes them), the rest
    # is the loop over the sessions in Python.
    held = sorted(set(portfolio.transactions.exclude(ticker="").values_list("ticker", flat=True)))

    def ledger_query() -> None:
        list(
            portfolio.transactions.order_by("executed_at", "id").values_list(
                "kind", "ticker", "quantity", "cash_change", "executed_at"
            )
        )

    def closes_query() -> None:
        port.get_closes(held, days[0] - performance.LOOK_BACK, end)

    closes_sql = captured_sql(closes_query)[0]

    def closes_raw() -> None:  # the same SQL, rows as psycopg makes them (no Django, no dates)
        with connection.cursor() as cursor:
            cursor.cursor.execute(closes_sql)
            cursor.cursor.fetchall()

    r = {k: [] for k in ("cold", "build", "warm", "returns", "ledger", "closes", "raw")}
    for _ in range(args.rounds):
        drop_series()
        cold()  # warm-up: connections, the calendar, imports
        r["cold"].append(c.summarize(c.time_calls(cold, args.cold, before=drop_series)))
        r["build"].append(c.summarize(c.time_calls(build, args.cold)))
        cold()
        r["warm"].append(c.summarize(c.time_calls(warm, args.warm)))
        r["returns"].append(
            c.summarize(c.time_calls(lambda: performance.returns(points, days[0]), args.cold))
        )
        r["ledger"].append(c.summarize(c.time_calls(ledger_query, args.cold)))
        r["closes"].append(c.summarize(c.time_calls(closes_query, args.cold)))
        r["raw"].append(c.summarize(c.time_calls(closes_raw, args.cold)))
    s = {name: c.rounds_summary(v) for name, v in r.items()}

    # Queries and cache round-trips of one call each, and the cached entry's size.
    q = {}
    for label, p in (
        (f"{TICKERS} tickers × 5 years", portfolio),
        ("1 ticker × 5 years", one),
        (f"{TICKERS} tickers × 3 months", short),
    ):
        drop_series()
        q[label] = counts(lambda p=p: performance.value_series(p, prices=port))
    cold()
    q_warm = counts(warm)
    q_build = counts(build)
    server_ms = explain_ms(build)
    entry_bytes = sum(len(redis.get(k) or b"") for k in redis.keys("*value-series*"))
    queries_fixed = all(n == 2 for n, _ in q.values()) and q_build[0] == 2

    main_q = q[f"{TICKERS} tickers × 5 years"]
    lines = [
        c.stat_line(f"value_series, cold   [{main_q[0]} q, {main_q[1]} cache]", s["cold"]),
        c.stat_line(f"build_series alone   [{q_build[0]} q, {q_build[1]} cache]", s["build"]),
        c.stat_line(f"value_series, warm   [{q_warm[0]} q, {q_warm[1]} cache]", s["warm"]),
        c.stat_line("returns(), 5 years   (no I/O)       ", s["returns"]),
        "where a cold build's time goes:",
        c.stat_line(f"  the ledger query    ({ledger:,} rows)", s["ledger"]),
        c.stat_line(f"  get_closes          ({stored:,} rows)", s["closes"]),
        c.stat_line("    its SQL, bare psycopg cursor  ", s["raw"]),
        "  PostgreSQL's own execution time (EXPLAIN ANALYZE): "
        + ", ".join(f"{ms:.1f} ms" for ms in server_ms),
        f"  the loop over {len(days):,} sessions × {len(held)} tickers, in Python: the rest "
        f"(≈ {c.fmt_ms(s['build']['p50'] - s['ledger']['p50'] - s['closes']['p50'])})",
        f"{len(points):,} points; the cached entry is {entry_bytes / 1024:.0f} kB (pickled)",
        "queries of a cold value_series: "
        + "; ".join(f"{label} {n} q, {rt} cache" for label, (n, rt) in q.items()),
        f"peak RSS {c.peak_rss_mb():.0f} MB",
    ]
    if args.profile:
        drop_series()
        lines += ["", f"cProfile, {args.cold} cold calls (tottime):"]
        lines += profile(lambda: (drop_series(), cold()), args.cold)
        cold()
        lines += ["", f"cProfile, {args.warm} warm calls (tottime):"]
        lines += profile(warm, args.warm)
    c.print_block("value over time (in process, warm = series cached)", cond, lines)

    def sp(x):
        return f"{c.fmt_ms(x['spread'][0])}–{c.fmt_ms(x['spread'][1])}"

    rows = [
        c.row(
            f"value over time, {TICKERS} tickers × 5 years, {ledger:,} ledger entries, cold",
            "p50 ≤ 50 ms",
            f"p50 {c.fmt_ms(s['cold']['p50'])}, p95 {c.fmt_ms(s['cold']['p95'])} "
            f"(build_series alone {c.fmt_ms(s['build']['p50'])})",
            s["cold"]["p50"] <= 50,
            sp(s["cold"]),
        ),
        c.row(
            "value over time, warm (cached series)",
            "p50 ≤ 5 ms",
            f"p50 {c.fmt_ms(s['warm']['p50'])}, p95 {c.fmt_ms(s['warm']['p95'])}",
            s["warm"]["p50"] <= 5,
            sp(s["warm"]),
        ),
        c.row(
            "value over time, SQL queries of a cold build",
            "2, whatever the range or the ticker count",
            " / ".join(f"{n}" for n, _ in q.values()) + f" ({', '.join(q)})",
            queries_fixed,
        ),
    ]
    print()
    for row in rows:
        verdict = "ok" if row["ok"] else "FAIL"
        print(f"   {row['what']}: {row['measured']}  (target {row['target']})  {verdict}")
    c.save(
        "value_over_time",
        {"conditions": cond, "figures": s, "counts": q, "rows": rows, "lines": lines},
    )


if __name__ == "__main__":
    main()
