"""A thousand tickers at speed: the staff status page, the refresh plan, the portfolio page's
budget and symbol search with 1,000 tickers × 1 year of daily bars and 100 users.

    python bench/thousand_tickers.py [--rounds 5] [--quick]

In process, on PostgreSQL and Redis, DEBUG off. The data: 1,000 tickers × 252 daily sessions
(most a few sessions stale, so the plan has work; a fifth fresh; one in a hundred missing a
session, so the status page lists coverage gaps), 100 users each with a portfolio of 20 of
them (every ticker held by two), and, for search, a generated 10,000-row symbol listing put in
place of the bundled one in this process only. The status page and the plan are measured
first with 100 of the tickers (10 users), then with all 1,000: their query counts must not
grow with the number of tickers.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

SESSIONS = 252
MAX_STALE = 5  # sessions a stale ticker's last bar lags behind the due one
HOLDINGS = 20
LEDGER_ROWS = 100  # per portfolio: a deposit and 99 buys
STATUS_P50_MS = 200
PLAN_P50_MS = 100
SEARCH_P50_MS = 20
PAGE_MAX_QUERIES = 10
PAGE_MAX_ROUND_TRIPS = 2
QUERIES = (
    "A", "AP", "APP", "APPLE", "MICRO", "MICROSOFT", "BANK", "BANK OF", "ZZ", "Q", "GOLD",
    "ENERGY", "THERA", "B0", "B05", "b0421", "XYZQW", "tech", "NV", "HOLDINGS",
)  # fmt: skip

# Words of listed companies' names, to make a listing that searches like a real one.
NAME_WORDS = (
    "Apple", "Applied", "Appian", "Micro", "Microchip", "Microvision", "Micron", "Bank",
    "Bancorp", "Banc", "American", "First", "National", "Global", "Pacific", "Atlantic",
    "Energy", "Capital", "Health", "Healthcare", "Systems", "Semiconductor", "Pharmaceuticals",
    "Therapeutics", "Biosciences", "Technologies", "Tech", "Software", "Networks", "Gold",
    "Mining", "Resources", "Oil", "Gas", "Petroleum", "Realty", "Properties", "Financial",
    "Insurance", "Industries", "Motors", "Airlines", "Foods", "Brands", "Retail", "Media",
    "Communications", "Entertainment", "Solar", "Power", "Utilities", "Water", "Steel",
    "Chemical", "Materials", "Logistics", "Transport", "Marine", "Aerospace", "Defense",
    "Medical", "Devices", "Diagnostics", "Genomics", "Data", "Cloud", "Digital", "Quantum",
    "Robotics", "Security", "Payments", "Lending", "Trust", "Royalty", "Infrastructure",
    "Northern", "Southern", "Western", "Eastern", "United", "General", "International",
    "Precision", "Advanced", "Dynamic", "Summit", "Pinnacle", "Harbor", "Eagle", "Falcon",
    "Liberty", "Heritage", "Frontier", "Nova", "Vertex", "Apex", "Zenith", "Orion", "Titan",
)  # fmt: skip
NAME_ENDINGS = (
    "Inc.", "Inc.", "Inc.", "Corp.", "Corporation", "Holdings, Inc.", "Group", "Ltd",
    "plc", "Co.", "N.V.", "S.A.", "Trust", "ETF", "Fund", "LP", "Company", "Limited",
)  # fmt: skip


def listing(size: int, bundled: dict[str, str]) -> dict[str, str]:
    """``size`` rows of ticker → name: the bundled rows, then generated ones (1–5 letters,
    some with a class suffix, names of two or three words and an ending)."""
    rng = random.Random(10_000)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = dict(bundled)
    while len(out) < size:
        ticker = "".join(rng.choice(letters) for _ in range(rng.choice((1, 2, 3, 3, 4, 4, 4, 5))))
        if rng.random() < 0.03:
            ticker += rng.choice((".A", ".B", "-W", "-U"))
        if ticker in out:
            continue
        words = rng.sample(NAME_WORDS, rng.choice((1, 2, 2, 3)))
        out[ticker] = f"{' '.join(words)} {rng.choice(NAME_ENDINGS)}"
    return out


def use_listing(rows: dict[str, str]) -> None:
    """Put ``rows`` in place of the bundled symbols (data/symbols.csv) in this process, and
    forget whatever marketdata.symbols derived from the real file."""
    from functools import cache

    import marketdata.symbols as symbols

    for value in vars(symbols).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()
    symbols.bundled_symbols = cache(lambda: rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 rounds, fewer calls each")
    parser.add_argument("--tickers", type=int, default=1000)
    parser.add_argument("--small", type=int, default=100, help="tickers of the first stage")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--listing", type=int, default=10_000, help="rows of the symbol listing")
    parser.add_argument("--profile", action="store_true", help="cProfile one call of each")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    scale = 2 if args.quick else 1  # calls per round are divided by this

    # No collectstatic here: the plain static storage (what the test suite's servers use).
    c.setup(PAPERTRADE_PLAIN_STATIC="1")
    c.reset_state()

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django_redis import get_redis_connection

    import marketdata.symbols as symbols
    from marketdata.plan import refresh_plan
    from marketdata.port import get_price_port
    from marketdata.testing.cache_calls import CacheCalls

    with connection.cursor() as cursor:  # the quota bench stores actions in the same db
        cursor.execute("TRUNCATE marketdata_corporateaction RESTART IDENTITY")
    redis = get_redis_connection("default")

    days = c.sessions(SESSIONS + MAX_STALE)
    tickers = c.ticker_names(args.tickers)
    rng = random.Random(1000)

    def series(names: list[str]) -> dict:
        out = {}
        for t in names:
            lag = 0 if rng.random() < 0.2 else rng.randint(1, MAX_STALE)
            ticker_days = days[len(days) - SESSIONS - lag : len(days) - lag]
            if int(t[1:]) % 100 == 42:  # a coverage gap: one session missing in the middle
                ticker_days = ticker_days[:100] + ticker_days[101:]
            out[t] = ticker_days
        return out

    users_per_ticker = args.users / args.tickers  # the same in both stages
    portfolios: list = []
    staff = c.make_user("bench-staff")
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])

    def add_stage(names: list[str], first_user: int, last_user: int, universe: int) -> int:
        rows = c.seed_bars(series(names))
        for u in range(first_user, last_user):
            held = [tickers[(u * 10 + j) % universe] for j in range(HOLDINGS)]
            user = c.make_user(f"bench-user-{u:03d}")
            portfolios.append(c.make_portfolio(user, f"P{u}", held, LEDGER_ROWS))
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE portfolios_transaction")
            cursor.execute("ANALYZE portfolios_holding")
        return rows

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(staff, backend="django.contrib.auth.backends.ModelBackend")

    def get(url: str, who: Client = client):
        response = who.get(url)
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}")
        return response

    def counts(fn) -> tuple[int, int]:
        with CacheCalls() as spy, CaptureQueriesContext(connection) as q:
            fn()
        return len(q.captured_queries), len(spy.calls)

    def drop_splits() -> None:  # the status page's one cached read: again each day
        keys = redis.keys("*suspected-splits*")
        if keys:
            redis.delete(*keys)

    status_url = "/market-data/status/"

    def measure_status(n_warm: int, n_cold: int, r: int) -> dict:
        warm, cold = [], []
        for _ in range(r):
            for _ in range(3):
                get(status_url)
            warm.append(c.summarize(c.time_calls(lambda: get(status_url), n_warm)))
            cold.append(
                c.summarize(c.time_calls(lambda: get(status_url), n_cold, before=drop_splits))
            )
        get(status_url)
        q_warm = counts(lambda: get(status_url))
        drop_splits()
        q_cold = counts(lambda: get(status_url))
        return {
            "warm": c.rounds_summary(warm),
            "cold": c.rounds_summary(cold),
            "q_warm": q_warm,
            "q_cold": q_cold,
            "size_kb": len(get(status_url).content) / 1024,
        }

    def measure_plan(n: int, r: int) -> dict:
        refresh_plan()
        samples = [c.summarize(c.time_calls(refresh_plan, n)) for _ in range(r)]
        plan = refresh_plan()
        return {
            "time": c.rounds_summary(samples),
            "q": counts(refresh_plan),
            "needing": len(plan.tickers),
            "fresh": plan.fresh,
            "runs": plan.runs,
        }

    # --- stage 1: the first --small tickers, their share of users ---------------------------
    small_users = round(args.small * users_per_ticker)
    add_stage(tickers[: args.small], 0, small_users, args.small)
    small_status = measure_status(20 // scale, 4, max(rounds // 2, 1))
    small_plan = measure_plan(30 // scale, max(rounds // 2, 1))

    # --- stage 2: all of them ---------------------------------------------------------------
    add_stage(tickers[args.small :], small_users, args.users, args.tickers)
    cond = c.conditions()
    cond["dataset"] = (
        f"{args.tickers:,} tickers × {SESSIONS} sessions ({cond['price_rows']:,} bars; "
        f"{sum(1 for t in tickers if int(t[1:]) % 100 == 42)} with a missing session), "
        f"{args.users} users × 1 portfolio of {HOLDINGS} holdings and {LEDGER_ROWS} ledger rows; "
        f"symbol listing of {args.listing:,} rows (generated, in process)"
    )
    status = measure_status(20 // scale, 5 // scale + 1, rounds)
    from marketdata.status import market_data_status

    status_data = c.rounds_summary(
        [c.summarize(c.time_calls(market_data_status, 20 // scale)) for _ in range(rounds)]
    )
    plan = measure_plan(50 // scale, rounds)

    # The portfolio page of one user (20 holdings), warm and cold.
    owner = portfolios[0].owner
    user_client = Client(HTTP_HOST="127.0.0.1")
    user_client.force_login(owner, backend="django.contrib.auth.backends.ModelBackend")
    page_url = f"/portfolios/{portfolios[0].pk}/"
    live_url = f"/portfolios/{portfolios[0].pk}/live/"

    def drop_prices() -> None:
        keys = redis.keys("*md:v[0-9]*:*")
        if keys:
            redis.delete(*keys)

    page = []
    for _ in range(rounds):
        for _ in range(5):
            get(page_url, user_client)
        page.append(c.summarize(c.time_calls(lambda: get(page_url, user_client), 40 // scale)))
    page_s = c.rounds_summary(page)
    get(page_url, user_client)
    page_warm = counts(lambda: get(page_url, user_client))
    live_warm = counts(lambda: get(live_url, user_client))
    drop_prices()
    page_cold = counts(lambda: get(page_url, user_client))
    page_ok = page_warm[0] <= PAGE_MAX_QUERIES and page_warm[1] <= PAGE_MAX_ROUND_TRIPS

    # Symbol search over a 10,000-row listing.
    bundled = symbols.bundled_symbols()
    rows = listing(args.listing, bundled)
    use_listing(rows)
    port = get_price_port()
    assert getattr(port, "upstream", None) is None  # offline: no provider is ever asked
    search_port: dict[str, list] = {q: [] for q in QUERIES}
    search_local: dict[str, list] = {q: [] for q in QUERIES}
    pooled_port, pooled_local = [], []
    hits = {q: len(port.search_symbols(q)) for q in QUERIES}  # warm-up (builds any index)
    for _ in range(rounds):
        all_port, all_local = [], []
        for q in QUERIES:
            t_port = c.time_calls(lambda q=q: port.search_symbols(q), 20 // scale)
            t_local = c.time_calls(lambda q=q: symbols.search_local(q), 20 // scale)
            search_port[q].append(c.summarize(t_port))
            search_local[q].append(c.summarize(t_local))
            all_port += t_port
            all_local += t_local
        pooled_port.append(c.summarize(all_port))
        pooled_local.append(c.summarize(all_local))
    s_port = c.rounds_summary(pooled_port)
    s_local = c.rounds_summary(pooled_local)
    per_query = {q: c.rounds_summary(v) for q, v in search_port.items()}
    worst = max(per_query, key=lambda q: per_query[q]["p50"])
    q_search = counts(lambda: port.search_symbols("AP"))

    if args.profile:
        import cProfile
        import pstats

        for label, fn in (
            ("status page", lambda: get(status_url)),
            ("refresh_plan", refresh_plan),
            ("search_symbols('MICRO')", lambda: port.search_symbols("MICRO")),
        ):
            prof = cProfile.Profile()
            prof.runcall(fn)
            print(f"\n--- profile: {label}")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)

    sw = status["warm"]

    def status_lines(st: dict, n: int) -> list[str]:
        return [
            c.stat_line(
                f"status page, {n:>5} tickers, {label} "
                f"[{st['q_' + k][0]:>2} q, {st['q_' + k][1]} cache]",
                st[k],
            )
            for k, label in (
                ("warm", "splits cached    "),
                ("cold", "splits not cached"),
            )
        ]

    lines = [
        *status_lines(small_status, args.small),
        *status_lines(status, args.tickers),
        f"  of which market_data_status() p50 {c.fmt_ms(status_data['p50'])} "
        f"(the rest: the template, {status['size_kb']:.0f} kB, and the request)",
        c.stat_line(
            f"refresh_plan, {args.small:>5} tickers [{small_plan['q'][0]} q]", small_plan["time"]
        ),
        c.stat_line(f"refresh_plan, {args.tickers:>5} tickers [{plan['q'][0]} q]", plan["time"])
        + f"  ({plan['needing']} need a bar, {plan['fresh']} fresh, {plan['runs']} runs)",
        c.stat_line(
            f"portfolio page, {HOLDINGS} holdings, warm [{page_warm[0]} q, {page_warm[1]} cache]",
            page_s,
        )
        + f"  (cold {page_cold[0]} q, {page_cold[1]} cache; live partial {live_warm[0]} q, "
        f"{live_warm[1]} cache)",
        c.stat_line(
            f"search_symbols (port, offline), {len(QUERIES)} queries [{q_search[0]} q]", s_port
        ),
        c.stat_line(f"search_local (as live), {len(QUERIES)} queries", s_local),
        "  per query, port p50: "
        + ", ".join(f"{q!r} {per_query[q]['p50']:.1f} ({hits[q]})" for q in QUERIES),
        f"peak RSS {c.peak_rss_mb():.0f} MB",
    ]
    c.print_block("a thousand tickers (in process)", cond, lines)

    def sp(s: dict) -> str:
        return f"{c.fmt_ms(s['spread'][0])}–{c.fmt_ms(s['spread'][1])}"

    flat = all(status[k][0] == small_status[k][0] for k in ("q_warm", "q_cold"))
    rows_out = [
        c.row(
            f"status page, {args.tickers:,} tickers",
            f"p50 ≤ {STATUS_P50_MS} ms, no query per ticker",
            f"p50 {c.fmt_ms(sw['p50'])}, p95 {c.fmt_ms(sw['p95'])} "
            f"(market_data_status() {c.fmt_ms(status_data['p50'])}); "
            f"{status['q_warm'][0]} queries with {args.tickers:,} tickers, "
            f"{small_status['q_warm'][0]} with {args.small}. The day's first view (suspected "
            f"splits not cached): p50 {c.fmt_ms(status['cold']['p50'])}, "
            f"{status['q_cold'][0]} queries ({small_status['q_cold'][0]} with {args.small})",
            sw["p50"] <= STATUS_P50_MS and flat,
            sp(sw),
        ),
        c.row(
            f"refresh plan, {args.tickers:,} tickers",
            f"p50 ≤ {PLAN_P50_MS} ms",
            f"p50 {c.fmt_ms(plan['time']['p50'])}, p95 {c.fmt_ms(plan['time']['p95'])}, "
            f"{plan['q'][0]} queries ({args.small} tickers: "
            f"{c.fmt_ms(small_plan['time']['p50'])})",
            plan["time"]["p50"] <= PLAN_P50_MS,
            sp(plan["time"]),
        ),
        c.row(
            f"portfolio page among {args.users} users × {HOLDINGS} holdings, warm",
            f"≤ {PAGE_MAX_QUERIES} queries, ≤ {PAGE_MAX_ROUND_TRIPS} cache round-trips",
            f"{page_warm[0]} queries, {page_warm[1]} round-trips; p50 {c.fmt_ms(page_s['p50'])}",
            page_ok,
        ),
        c.row(
            f"search_symbols over a {args.listing:,}-row listing",
            f"p50 ≤ {SEARCH_P50_MS} ms",
            f"p50 {c.fmt_ms(s_port['p50'])}, p95 {c.fmt_ms(s_port['p95'])} over "
            f"{len(QUERIES)} queries (slowest {worst!r}: {c.fmt_ms(per_query[worst]['p50'])}); "
            f"search_local as live p50 {c.fmt_ms(s_local['p50'])}",
            s_port["p50"] <= SEARCH_P50_MS,
            sp(s_port),
        ),
    ]
    for r in rows_out:
        verdict = "ok  " if r["ok"] else "FAIL"
        print(f"   {verdict} {r['what']}: {r['measured']} (target {r['target']})")
    c.save(
        "thousand_tickers",
        {
            "conditions": cond,
            "status": status,
            "status_small": small_status,
            "status_data": status_data,
            "plan": plan,
            "plan_small": small_plan,
            "page": {"time": page_s, "warm": page_warm, "cold": page_cold, "live": live_warm},
            "search_port": s_port,
            "search_local": s_local,
            "search_per_query": per_query,
            "rows": rows_out,
            "lines": lines,
        },
    )


if __name__ == "__main__":
    main()
