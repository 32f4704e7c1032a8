"""The price port (PRODUCT §3.1, §7 rows 1–3): current price on a cache hit, a database hit and a
miss through the fake Alpha Vantage; get_current_prices for 50 tickers; one and twenty years of
daily history; get_price_at.

    python bench/price_port.py [--rounds 5] [--tickers 1000]

Inside one process, on PostgreSQL and Redis, with --tickers × 252 bars stored besides one
ticker with twenty years of bars.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402


def counts(fn) -> tuple[int, int]:
    """(SQL queries, cache round-trips) of one call of ``fn``."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from marketdata.testing.cache_calls import CacheCalls

    with CacheCalls() as spy, CaptureQueriesContext(connection) as q:
        fn()
    return len(q.captured_queries), len(spy.calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tickers", type=int, default=1000)
    args = parser.parse_args()

    c.setup()
    c.reset_state()

    from django.conf import settings
    from django.core.cache import cache

    from marketdata.price_cache import current_key
    from marketdata.testing import FakeAlphaVantage
    from marketdata.tiers import TieredMarketData

    year = c.sessions(252)
    twenty = c.sessions(252 * 20)
    tickers = c.ticker_names(args.tickers)
    stored = c.seed_bars({**{t: year for t in tickers}, "LONG": twenty})
    cond = c.conditions()
    cond["dataset"] = f"{args.tickers} tickers × 252 bars + LONG × {len(twenty)} bars = {stored:,}"

    port = TieredMarketData()
    fifty = tickers[:50]
    last = year[-1]
    r = {
        k: []
        for k in (
            "hit", "db", "miss", "many_warm", "many_cold", "hist1", "hist1_live", "hist20", "at"
        )
    }  # fmt: skip
    miss_n = 0
    with FakeAlphaVantage() as fake:
        roomy = dataclasses.replace(
            settings.PAPERTRADE.quota,
            min_seconds_between_calls=0.0,
            per_minute=100_000,
            per_day=100_000,
        )
        settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, quota=roomy)
        from marketdata.wiring import get_market_data
        from papertrade.celery import app

        # A miss hands its fetch to a Celery worker; here the task runs in this thread
        # (eager), so the miss measures the whole fetch as if a worker took it at once.
        app.conf.task_always_eager = True
        settings.ALPHA_VANTAGE_API_KEY = c.PROVIDER_KEY
        settings.ALPHA_VANTAGE_BASE_URL = fake.url
        live = get_market_data()
        assert live.upstream is not None
        from marketdata.port import close_of

        start1 = last - timedelta(days=365)
        when = close_of(year[100]) + timedelta(hours=30)
        seq = itertools.count()
        state: dict[str, str] = {}

        def drop() -> None:  # a database hit: the cached price is gone
            state["t"] = tickers[next(seq) % len(tickers)]
            cache.delete(current_key(state["t"]))

        def new_name() -> None:  # a miss: a ticker nothing is stored for
            state["m"] = f"M{next(seq):05d}"

        def drop_fifty() -> None:
            cache.delete_many([current_key(t) for t in fifty])

        def hit() -> None:
            port.get_current_price(fifty[next(seq) % 50])

        for _ in range(args.rounds):
            # Warm-up: the first calls import modules, open connections and build the calendar.
            for t in fifty:
                port.get_current_price(t)
            r["hit"].append(c.summarize(c.time_calls(hit, 2000)))
            r["db"].append(
                c.summarize(
                    c.time_calls(lambda: port.get_current_price(state["t"]), 400, before=drop)
                )
            )
            r["miss"].append(
                c.summarize(
                    c.time_calls(lambda: live.get_current_price(state["m"]), 40, before=new_name)
                )
            )
            miss_n += 40
            port.get_current_prices(fifty)
            r["many_warm"].append(
                c.summarize(c.time_calls(lambda: port.get_current_prices(fifty), 300))
            )
            r["many_cold"].append(
                c.summarize(
                    c.time_calls(lambda: port.get_current_prices(fifty), 150, before=drop_fifty)
                )
            )
            r["hist1"].append(
                c.summarize(
                    c.time_calls(lambda: port.get_price_history(fifty[0], start1, last), 300)
                )
            )
            r["hist1_live"].append(
                c.summarize(
                    c.time_calls(lambda: live.get_price_history(fifty[0], start1, last), 300)
                )
            )
            r["hist20"].append(
                c.summarize(
                    c.time_calls(lambda: port.get_price_history("LONG", twenty[0], last), 40)
                )
            )
            r["at"].append(
                c.summarize(c.time_calls(lambda: port.get_price_at(fifty[1], when), 500))
            )
        upstream_calls = fake.count("TIME_SERIES_DAILY")
        q_miss = counts(lambda: live.get_current_price("MZZZZ"))

    s = {name: c.rounds_summary(v) for name, v in r.items()}
    n1 = len(port.get_price_history(fifty[0], last - timedelta(days=365), last))
    n20 = len(port.get_price_history("LONG", twenty[0], last))

    # Queries and round-trips of one call each.
    port.get_current_price(fifty[0])
    q_hit = counts(lambda: port.get_current_price(fifty[0]))
    cache.delete(current_key(fifty[0]))
    q_db = counts(lambda: port.get_current_price(fifty[0]))
    q_many_warm = counts(lambda: port.get_current_prices(fifty))
    cache.delete_many([current_key(t) for t in fifty])
    q_many_cold = counts(lambda: port.get_current_prices(fifty))

    lines = [
        c.stat_line(f"current price, cache hit        [{q_hit[0]} q, {q_hit[1]} cache]", s["hit"]),
        c.stat_line(f"current price, database hit     [{q_db[0]} q, {q_db[1]} cache]", s["db"]),
        c.stat_line(
            f"current price, miss → fake AV   [{q_miss[0]} q, {q_miss[1]} cache]", s["miss"]
        ),
        f"  (upstream calls made by the miss runs: {upstream_calls} for {miss_n} misses)",
        c.stat_line(
            f"get_current_prices(50), warm    [{q_many_warm[0]} q, {q_many_warm[1]} cache]",
            s["many_warm"],
        ),
        c.stat_line(
            f"get_current_prices(50), cold    [{q_many_cold[0]} q, {q_many_cold[1]} cache]",
            s["many_cold"],
        ),
        c.stat_line(f"history, 1 year ({n1} bars)      ", s["hist1"]),
        c.stat_line("history, 1 year, live port      ", s["hist1_live"]),
        c.stat_line(f"history, 20 years ({n20} bars)  ", s["hist20"]),
        c.stat_line("get_price_at                    ", s["at"]),
        f"peak RSS {c.peak_rss_mb():.0f} MB",
    ]
    c.print_block("price port (in process)", cond, lines)

    def sp(x):
        return f"{c.fmt_ms(x['spread'][0])}–{c.fmt_ms(x['spread'][1])}"

    rows = [
        c.row(
            "current price, cache hit",
            "p50 ≤ 1 ms",
            f"p50 {c.fmt_ms(s['hit']['p50'])}, p95 {c.fmt_ms(s['hit']['p95'])}",
            s["hit"]["p50"] <= 1,
            sp(s["hit"]),
        ),
        c.row(
            "current price, database hit",
            "p50 ≤ 5 ms",
            f"p50 {c.fmt_ms(s['db']['p50'])}, p95 {c.fmt_ms(s['db']['p95'])}",
            s["db"]["p50"] <= 5,
            sp(s["db"]),
        ),
        c.row(
            "current price, miss through the fake provider",
            "(no target)",
            f"p50 {c.fmt_ms(s['miss']['p50'])}, p95 {c.fmt_ms(s['miss']['p95'])}; "
            f"{upstream_calls} calls for {miss_n} misses",
            upstream_calls == miss_n,
            sp(s["miss"]),
        ),
        c.row(
            "get_current_prices, 50 tickers",
            "1 cache round-trip + 1 query",
            f"warm p50 {c.fmt_ms(s['many_warm']['p50'])} ({q_many_warm[1]} rt, "
            f"{q_many_warm[0]} q); cold p50 {c.fmt_ms(s['many_cold']['p50'])} "
            f"({q_many_cold[1]} rt, {q_many_cold[0]} q)",
            q_many_warm == (0, 1) and q_many_cold[0] == 1 and q_many_cold[1] <= 2,
            f"warm {sp(s['many_warm'])}; cold {sp(s['many_cold'])}",
        ),
        c.row(
            f"1 year of daily history ({n1} bars)",
            "p50 ≤ 10 ms",
            f"p50 {c.fmt_ms(s['hist1']['p50'])}",
            s["hist1"]["p50"] <= 10,
            sp(s["hist1"]),
        ),
        c.row(
            f"20 years of daily history ({n20} bars)",
            "p50 ≤ 50 ms",
            f"p50 {c.fmt_ms(s['hist20']['p50'])}",
            s["hist20"]["p50"] <= 50,
            sp(s["hist20"]),
        ),
    ]
    c.save("price_port", {"conditions": cond, "figures": s, "rows": rows, "lines": lines})


if __name__ == "__main__":
    main()
