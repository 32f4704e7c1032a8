"""Cold-ticker stampede (PRODUCT §3.2, §7 row 6): 100 concurrent first views of one uncached
ticker → upstream calls counted (target: exactly 1).

    python bench/stampede.py [--rounds 5] [--http-rounds 3] [--delay 0.3]

Two ways, each over several fresh tickers:
- port: 4 processes × 25 threads call ``get_current_price(T)`` at the same instant;
- http: 100 concurrent GETs of the stock page /stocks/T/ through gunicorn (4 workers × 2
  threads, as the Procfile), each from a different logged-in session.
The fake Alpha Vantage answers after ``--delay`` seconds (a real call takes about that long),
and the quota is made roomy, so only the single-flight (one background fetch a ticker, run by
a Celery worker as the Procfile runs it) can keep the count at 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

PROCESSES = 4
THREADS = 25


def child(ticker: str) -> None:
    """One of the processes: THREADS threads ask for ``ticker`` at once, when told to go."""
    c.setup(child=True, migrate=False)
    from django.db import connections

    from marketdata.wiring import get_market_data

    port = get_market_data()
    # Like a running server's process: the NYSE calendar is built (about 0.6 s of CPU, and
    # memoized without a lock, so 25 threads asking at once would each build it).
    port.due_session()
    results: list[tuple[float, str]] = []
    lock = threading.Lock()

    start = threading.Event()

    def ask() -> None:
        start.wait()
        t0 = time.perf_counter()
        try:
            point = port.get_current_price(ticker)
            outcome = "ok" if point.price else "empty"
        except Exception as exc:  # noqa: BLE001 - counted, not raised
            outcome = type(exc).__name__
        finally:
            connections.close_all()
        with lock:
            results.append(((time.perf_counter() - t0) * 1000, outcome))

    threads = [threading.Thread(target=ask) for _ in range(THREADS)]
    for t in threads:
        t.start()
    c.wait_for_go()
    start.set()
    for t in threads:
        t.join()
    print(json.dumps(results))


def run_port_round(ticker: str, env: dict) -> list[tuple[float, str]]:
    procs = c.start_children(
        [[str(c.VENV_PYTHON), __file__, "--child", ticker] for _ in range(PROCESSES)], env
    )
    c.go(procs)
    out: list[tuple[float, str]] = []
    for line in c.collect(procs, timeout=120):
        out += [tuple(x) for x in json.loads(line)]
    return out


def run_http_round(url: str, ticker: str, cookies: list[str]) -> list[tuple[float, str]]:
    import urllib.error
    import urllib.request

    start = threading.Barrier(len(cookies))
    results: list[tuple[float, str]] = []
    lock = threading.Lock()

    def ask(cookie: str) -> None:
        req = urllib.request.Request(
            f"{url}/stocks/{ticker}/", headers={"Cookie": f"sessionid={cookie}"}
        )
        start.wait()
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                body = r.read()
                outcome = "ok" if r.status == 200 and ticker.encode() in body else f"{r.status}"
        except urllib.error.HTTPError as exc:
            outcome = f"HTTP {exc.code}"
        except OSError as exc:
            outcome = type(exc).__name__
        with lock:
            results.append(((time.perf_counter() - t0) * 1000, outcome))

    threads = [threading.Thread(target=ask, args=(ck,)) for ck in cookies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--http-rounds", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.3, help="fake provider latency (s)")
    args = parser.parse_args()

    c.setup()
    c.reset_state()
    from django_redis import get_redis_connection

    from marketdata.testing import FakeAlphaVantage

    c.seed_bars({t: c.sessions(252) for t in c.ticker_names(1000)})
    users = [c.make_user(f"stampede{i:03d}") for i in range(100)]
    cookies = [c.session_cookie(u) for u in users]
    cond = c.conditions()
    cond["dataset"] = "1000 tickers × 252 bars stored; the stampede tickers have none"

    tickers_port = [f"ZS{i}" for i in range(args.rounds)]
    tickers_http = [f"ZH{i}" for i in range(args.http_rounds)]
    port_rounds: dict[str, dict] = {}
    http_rounds: dict[str, dict] = {}
    with FakeAlphaVantage() as fake:
        for t in tickers_port + tickers_http:
            fake.route("TIME_SERIES_DAILY", t, fake.default_daily(t), delay=args.delay)
        config = c.write_config(c.ROOMY_QUOTA, "roomy")
        env = c.bench_env(
            ALPHA_VANTAGE_API_KEY=c.PROVIDER_KEY,
            ALPHA_VANTAGE_BASE_URL=fake.url,
            PAPERTRADE_CONFIG=str(config),
        )
        worker = c.CeleryWorker(env=env)
        worker.__enter__()
        for t in tickers_port:
            res = run_port_round(t, env)
            port_rounds[t] = {"results": res, "upstream": fake.count("TIME_SERIES_DAILY", t)}
            print(
                f"   port {t}: {len(res)} requests, upstream calls {port_rounds[t]['upstream']}",
                flush=True,
            )
        if tickers_http:
            with c.Gunicorn(env=env) as server:
                warm = run_http_round(server.url, "B0001", cookies[:16])  # calendars built
                assert all(o == "ok" for _, o in warm), warm
                for t in tickers_http:
                    res = run_http_round(server.url, t, cookies)
                    http_rounds[t] = {
                        "results": res,
                        "upstream": fake.count("TIME_SERIES_DAILY", t),
                    }
                    print(
                        f"   http {t}: {len(res)} requests, upstream calls "
                        f"{http_rounds[t]['upstream']}",
                        flush=True,
                    )
        worker.__exit__(None, None, None)
        total_requests = len(fake.requests)
    get_redis_connection("default").flushdb()

    def describe(kind: str, rounds: dict[str, dict]) -> tuple[list[str], dict]:
        if not rounds:
            return [], {}
        calls = [r["upstream"] for r in rounds.values()]
        latencies = [ms for r in rounds.values() for ms, _ in r["results"]]
        outcomes: dict[str, int] = {}
        for r in rounds.values():
            for _, o in r["results"]:
                outcomes[o] = outcomes.get(o, 0) + 1
        s = c.summarize(latencies)
        n = sum(len(r["results"]) for r in rounds.values())
        lines = [
            f"{kind}: {len(rounds)} tickers × {n // len(rounds)} concurrent requests → upstream "
            f"calls per ticker {calls} (want all 1)",
            f"      outcomes {outcomes}",
            "      " + c.stat_line("latency of all requests", s),
        ]
        return lines, {"calls": calls, "outcomes": outcomes, "latency": s, "requests": n}

    lines_p, fig_p = describe("port (4 processes × 25 threads)", port_rounds)
    lines_h, fig_h = describe("http (gunicorn 2×4, /stocks/T/)", http_rounds)
    lines = lines_p + lines_h + [f"fake provider saw {total_requests} requests in all"]
    c.print_block("cold-ticker stampede", cond, lines)
    all_calls = fig_p.get("calls", []) + fig_h.get("calls", [])
    failed = sum(v for f in (fig_p, fig_h) for k, v in f.get("outcomes", {}).items() if k != "ok")
    p50s = [f["latency"]["p50"] for f in (fig_p, fig_h) if f]
    rows = [
        c.row(
            "cold-ticker stampede: 100 concurrent requests for one uncached ticker",
            "exactly 1 upstream call",
            f"{all_calls} upstream calls over {len(all_calls)} tickers "
            f"({len(port_rounds)} in-process ×100, {len(http_rounds)} through gunicorn ×100); "
            f"{failed} requests without a price; p50 "
            f"{statistics.median(p50s):.0f} ms",
            all(x == 1 for x in all_calls) and failed == 0,
        )
    ]
    c.save(
        "stampede", {"conditions": cond, "port": fig_p, "http": fig_h, "rows": rows, "lines": lines}
    )


if __name__ == "__main__":
    main()
