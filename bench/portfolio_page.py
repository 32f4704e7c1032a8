"""The portfolio page (PRODUCT §7 row 4): with 1, 10 and 50 holdings and 10,000 ledger rows,
server time and the number of SQL queries and cache round-trips, warm and cold; the same for
the polling partial (/live/) and a deep page of the transaction history.

    python bench/portfolio_page.py [--rounds 5] [--requests 100] [--ledger 10000]

In process, through Django's full middleware stack (the test client with a logged-in session:
what it adds is well under a millisecond), on PostgreSQL and Redis, DEBUG off.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

HOLDINGS = (1, 10, 50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--ledger", type=int, default=10_000)
    parser.add_argument("--tickers", type=int, default=1000, help="stored tickers × 252 bars")
    args = parser.parse_args()

    c.setup()
    c.reset_state()

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django_redis import get_redis_connection

    from marketdata.testing.cache_calls import CacheCalls

    tickers = c.ticker_names(args.tickers)
    c.seed_bars({t: c.sessions(252) for t in tickers})
    user = c.make_user("bench-page")
    portfolios = {h: c.make_portfolio(user, f"P{h}", tickers[:h], args.ledger) for h in HOLDINGS}
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE portfolios_transaction")
    cond = c.conditions()
    cond["dataset"] = (
        f"{args.tickers} tickers × 252 bars; portfolios with {', '.join(map(str, HOLDINGS))} "
        f"holdings, {args.ledger:,} ledger rows each"
    )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    redis = get_redis_connection("default")

    def get(url: str):
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}")
        return response

    def drop_prices() -> None:
        keys = redis.keys("*md:v[0-9]*:*")  # every version of the market-data keys
        if keys:
            redis.delete(*keys)

    def measure_counts(url: str) -> tuple[int, int]:
        with CacheCalls() as spy, CaptureQueriesContext(connection) as q:
            get(url)
        return len(q.captured_queries), len(spy.calls)

    pages = {}
    for h, p in portfolios.items():
        pages[f"page {h:>2} holdings"] = f"/portfolios/{p.pk}/"
        pages[f"live {h:>2} holdings"] = f"/portfolios/{p.pk}/live/"
    pages["page 50, history page 200"] = f"/portfolios/{portfolios[50].pk}/?page=200"
    pages["dashboard (3 portfolios)"] = "/"

    warm = {name: [] for name in pages}
    cold = {name: [] for name in pages}
    for _ in range(args.rounds):
        for name, url in pages.items():
            for _ in range(5):
                get(url)  # warm: connections, templates, cached prices
            warm[name].append(c.summarize(c.time_calls(lambda u=url: get(u), args.requests)))
            cold[name].append(
                c.summarize(
                    c.time_calls(
                        lambda u=url: get(u), max(args.requests // 4, 10), before=drop_prices
                    )
                )
            )
    counts_warm = {}
    counts_cold = {}
    for name, url in pages.items():
        get(url)
        counts_warm[name] = measure_counts(url)
        drop_prices()
        counts_cold[name] = measure_counts(url)
    s_warm = {n: c.rounds_summary(v) for n, v in warm.items()}
    s_cold = {n: c.rounds_summary(v) for n, v in cold.items()}
    size = {name: len(get(url).content) for name, url in pages.items()}

    lines = []
    for name in pages:
        qw, rw = counts_warm[name]
        qc, rc = counts_cold[name]
        lines.append(c.stat_line(f"{name:26s} warm [{qw:>2} q, {rw} cache]", s_warm[name]))
        lines.append(
            c.stat_line(f"{'':26s} cold [{qc:>2} q, {rc} cache]", s_cold[name])
            + f"  {size[name] / 1024:.0f} kB"
        )
    lines.append(f"peak RSS {c.peak_rss_mb():.0f} MB")
    c.print_block("portfolio page (in process, warm = prices cached)", cond, lines)

    w50 = s_warm["page 50 holdings"]
    budget_ok = all(
        counts_warm[f"page {h:>2} holdings"][0] <= 10
        and counts_warm[f"page {h:>2} holdings"][1] <= 2
        for h in HOLDINGS
    )
    qs = "/".join(str(counts_warm[f"page {h:>2} holdings"][0]) for h in HOLDINGS)
    rts = "/".join(str(counts_warm[f"page {h:>2} holdings"][1]) for h in HOLDINGS)
    rows = [
        c.row(
            "portfolio page, 1/10/50 holdings, 10,000 ledger rows, warm: "
            "queries, cache round-trips",
            "≤ 10 queries, ≤ 2 cache round-trips, whatever the holdings count",
            f"{qs} queries, {rts} round-trips",
            budget_ok,
        ),
        c.row(
            "portfolio page, 50 holdings, warm: server time",
            "p50 ≤ 50 ms",
            f"p50 {c.fmt_ms(w50['p50'])}, p95 {c.fmt_ms(w50['p95'])} "
            f"(1 holding {c.fmt_ms(s_warm['page  1 holdings']['p50'])}, "
            f"live partial {c.fmt_ms(s_warm['live 50 holdings']['p50'])})",
            w50["p50"] <= 50,
            f"{c.fmt_ms(w50['spread'][0])}–{c.fmt_ms(w50['spread'][1])}",
        ),
    ]
    c.save(
        "portfolio_page",
        {
            "conditions": cond,
            "warm": s_warm,
            "cold": s_cold,
            "counts_warm": counts_warm,
            "counts_cold": counts_cold,
            "rows": rows,
            "lines": lines,
        },
    )


if __name__ == "__main__":
    main()
