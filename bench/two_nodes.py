"""Two web nodes (PRODUCT §12, "More than one machine"): two gunicorns, on 127.0.0.1 and on
127.0.0.2, each in a working folder of its own, and two Celery workers, against one PostgreSQL
and one Redis, under load on both nodes.

    python bench/two_nodes.py [--seconds 20] [--threads 3] [--workers 2] [--crowd 10]

What the nodes share is what a deployment shares: the database, the Redis (cache, quota,
single-flight and run locks, the broker), the configuration file and the environment (one
``SECRET_KEY``: the bench's own sessions are made with it). Each node runs gunicorn
(``--workers`` × 2 threads) in ``var/bench-two-nodes/node-a`` or ``node-b``, with its own
``STATIC_ROOT`` collected by ``collectstatic`` (reused while newer than every file in
``static/``). The fake Alpha Vantage enforces the configured quota (0.25 s between calls on the
app's side, 30 a minute, 200 a day) and counts every call that broke it.

Prints, in order:

- the cold-ticker stampede: ``--crowd`` first views of an unstored ticker on each node at the
  same instant (a barrier), three tickers: the upstream calls per ticker (want 1 each);
- two refresh runs at the same instant in two processes (two beats by mistake): the upstream
  calls per ticker (want 1 each) and what each run said (one finds the other's run lock);
- the load: ``--threads`` people per node, each looping over their portfolio page, its
  ``/live/`` poll and a stock page, one in two iterations a stock page of a new unstored
  ticker (more than the minute allows) and one in four a buy: requests/s and p50/p95/max per
  node;
- what the provider saw: calls, the most in one clock minute and in one day against the
  limits, and violations (want 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

HOSTS = {"A": "127.0.0.1", "B": "127.0.0.2"}
NODES_DIR = c.ROOT / "var" / "bench-two-nodes"
SECRET_KEY = "bench-two-nodes-share-one-secret-key-" + "k" * 24
SPACING, PER_MINUTE, PER_DAY = 0.25, 30, 200
PROVIDER_SPACING, TOLERANCE = 0.2, 0.05
WATCHLIST = ["WA01", "WA02", "WA03", "WA04"]
DAILY = "TIME_SERIES_DAILY"


def refresh_child() -> None:
    """One of the two refresh runs: set up, wait for go, run, print its summary line."""
    c.setup(child=True, migrate=False)
    from marketdata.plan import refresh_plan
    from marketdata.refresh import refresh_prices

    refresh_plan()  # the NYSE calendar is built before the start line
    c.wait_for_go()
    print(json.dumps(refresh_prices().line()), flush=True)


def free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def collect_static(env: dict, root: Path) -> str:
    """``collectstatic`` into ``root`` unless its manifest is newer than every source file."""
    manifest = root / "staticfiles.json"
    newest = max(p.stat().st_mtime for p in (c.ROOT / "static").rglob("*") if p.is_file())
    if manifest.exists() and manifest.stat().st_mtime > newest:
        return "reused"
    started = time.monotonic()
    subprocess.run(
        [sys.executable, str(c.ROOT / "manage.py"), "collectstatic", "--noinput", "-v0"],
        cwd=c.ROOT,
        env=env,
        check=True,
        timeout=600,
    )
    return f"collected in {time.monotonic() - started:.0f} s"


class Node:
    """gunicorn on ``host`` in ``workdir`` (its cwd; the code found through --pythonpath)."""

    def __init__(self, name: str, env: dict, workers: int, threads: int = 2) -> None:
        self.name = name
        self.host = HOSTS[name]
        self.workdir = NODES_DIR / f"node-{name.lower()}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = {**env, "STATIC_ROOT": str(self.workdir / "static")}
        self.port = free_port(self.host)
        self.url = f"http://{self.host}:{self.port}"
        self.workers, self.threads = workers, threads
        self.log = self.workdir / "gunicorn.log"
        self.static = ""
        self.proc = None

    def start(self) -> None:
        self.static = collect_static(self.env, self.workdir / "static")
        self._log = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(c.ROOT / ".venv" / "bin" / "gunicorn"), "papertrade.wsgi",
                "--pythonpath", str(c.ROOT),
                "--bind", f"{self.host}:{self.port}",
                "--workers", str(self.workers), "--threads", str(self.threads),
                "--log-level", "warning",
            ],
            cwd=self.workdir,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait(self) -> None:
        import urllib.request

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn {self.name} exited; see {self.log}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn {self.name} did not answer in 90 s; see {self.log}")

    def stop(self) -> None:
        c.stop_process(self.proc)
        if self.proc is not None:
            self._log.close()


class Worker:
    """A Celery worker as the Procfile runs it (prefork, 2 processes), named for its node."""

    def __init__(self, name: str, env: dict) -> None:
        self.name, self.env = name, env
        self.log = NODES_DIR / f"worker-{name.lower()}.log"
        self.proc = None

    def start(self) -> None:
        self._log = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(c.ROOT / ".venv" / "bin" / "celery"), "-A", "papertrade", "worker",
                "--concurrency=2", "--loglevel=INFO", "-n", f"bench-{self.name}@%h",
                "--without-mingle", "--without-gossip",
            ],
            cwd=c.ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the celery worker {self.name} exited; see {self.log}")
            if " ready." in self.log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the celery worker {self.name} was not ready in 90 s")

    def stop(self) -> None:
        c.stop_process(self.proc)
        if self.proc is not None:
            self._log.close()


def client(cookie: str):
    import requests

    session = requests.Session()
    session.cookies.set("sessionid", cookie)  # no domain: the same cookie on both nodes
    return session


def settle(redis, timeout: float = 120) -> None:
    """Wait until no background fetch is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if redis.llen("celery") == 0 and not redis.keys("papertrade:1:md:v2:fetching:*"):
            return
        time.sleep(0.2)
    raise RuntimeError("background fetches did not end")


def stampede(nodes: list[Node], cookies: list[str], ticker: str, fake, redis) -> dict:
    crowd = [(node, cookie) for node in nodes for cookie in cookies]
    barrier = threading.Barrier(len(crowd))
    results: list[tuple[float, int]] = []
    lock = threading.Lock()

    def ask(node: Node, cookie: str) -> None:
        session = client(cookie)
        barrier.wait(timeout=60)
        t0 = time.perf_counter()
        status = session.get(f"{node.url}/stocks/{ticker}/", timeout=60).status_code
        with lock:
            results.append(((time.perf_counter() - t0) * 1000, status))

    threads = [threading.Thread(target=ask, args=pair) for pair in crowd]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    deadline = time.monotonic() + 30
    while fake.count(DAILY, ticker) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    settle(redis)
    time.sleep(0.5)
    return {
        "requests": len(results),
        "statuses": dict(Counter(s for _, s in results)),
        "upstream": fake.count(DAILY, ticker),
        "latency": c.summarize([ms for ms, _ in results]),
    }


def two_refreshes(env: dict, fake) -> dict:
    for ticker in WATCHLIST:  # answers that take a second: the runs overlap for seconds
        fake.route(DAILY, ticker, fake.default_daily(ticker), delay=1.0)
    before = len(fake.requests)
    argv = [str(c.VENV_PYTHON), __file__, "--refresh"]
    procs = c.start_children([argv, argv], env)
    c.go(procs)
    lines = [json.loads(line) for line in c.collect(procs, timeout=180)]
    asked = Counter(s for f, s, _ in fake.requests[before:] if f == DAILY)
    return {"lines": lines, "calls": dict(asked)}


def load(nodes: list[Node], people: dict[str, list[tuple[str, int]]], seconds: float) -> dict:
    import re

    stored = c.ticker_names(10, prefix="H")
    cold = iter(f"LD{i:03d}" for i in range(200))
    pick = threading.Lock()
    samples: dict[str, list[float]] = {n.name: [] for n in nodes}
    statuses: dict[str, Counter] = {n.name: Counter() for n in nodes}
    asked_cold = Counter()
    stop_at = time.monotonic() + seconds

    def person(node: Node, cookie: str, pk: int, index: int) -> None:
        session = client(cookie)
        page = session.get(f"{node.url}/portfolios/{pk}/", timeout=60)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        n = 0
        while time.monotonic() < stop_at:
            calls = [
                ("GET", f"/portfolios/{pk}/"),
                ("GET", f"/portfolios/{pk}/live/"),
                ("GET", f"/stocks/{stored[(index + n) % len(stored)]}/"),
            ]
            if n % 2 == 0:
                with pick:
                    ticker = next(cold, None)
                if ticker:
                    calls.append(("GET", f"/stocks/{ticker}/"))
                    asked_cold[node.name] += 1
            if n % 4 == 0:
                calls.append(("POST", f"/portfolios/{pk}/trade/"))
            for method, path in calls:
                t0 = time.perf_counter()
                if method == "GET":
                    r = session.get(node.url + path, timeout=60)
                else:
                    data = {
                        "side": "BUY",
                        "ticker": stored[index % len(stored)],
                        "quantity": "0.1",
                        "csrfmiddlewaretoken": token.group(1) if token else "",
                    }
                    r = session.post(node.url + path, data=data, timeout=60, allow_redirects=False)
                with pick:
                    samples[node.name].append((time.perf_counter() - t0) * 1000)
                    statuses[node.name][f"{method} {r.status_code}"] += 1
            n += 1

    threads = [
        threading.Thread(target=person, args=(node, cookie, pk, i))
        for node in nodes
        for i, (cookie, pk) in enumerate(people[node.name])
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    elapsed = time.monotonic() - started
    return {
        name: {
            "requests": len(values),
            "per_second": len(values) / elapsed,
            "latency": c.summarize(values),
            "statuses": dict(statuses[name]),
            "cold_tickers": asked_cold[name],
        }
        for name, values in samples.items()
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--refresh":
        refresh_child()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration")
    parser.add_argument("--threads", type=int, default=3, help="people per node")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per node")
    parser.add_argument("--crowd", type=int, default=10, help="stampede requests per node")
    args = parser.parse_args()

    c.setup(SECRET_KEY=SECRET_KEY)
    c.reset_state()
    from django_redis import get_redis_connection

    from marketdata.testing import FakeAlphaVantage

    holdings = c.ticker_names(10, prefix="H")
    c.seed_bars({t: c.sessions(252) for t in holdings})
    users = [c.make_user(f"twonodes{i:02d}") for i in range(max(args.crowd, 2 * args.threads))]
    cookies = [c.session_cookie(u) for u in users]
    portfolios = [c.make_portfolio(u, "Main", holdings, 1000).pk for u in users]
    people = {
        "A": list(zip(cookies, portfolios, strict=True))[: args.threads],
        "B": list(zip(cookies, portfolios, strict=True))[args.threads : 2 * args.threads],
    }
    redis = get_redis_connection("default")
    cond = c.conditions()
    cond["nodes"] = (
        f"2 × gunicorn {args.workers} workers × 2 threads (127.0.0.1, 127.0.0.2), "
        "2 × celery worker (prefork 2), one PostgreSQL, one Redis (cache, quota, broker)"
    )
    cond["quota"] = (
        f"{SPACING} s between calls, {PER_MINUTE}/minute, {PER_DAY}/day (the fake enforces "
        f"{PROVIDER_SPACING} s, {PER_MINUTE}/minute, {PER_DAY}/day)"
    )

    config = c.write_config(
        {
            "quota": {
                "min_seconds_between_calls": SPACING,
                "per_minute": PER_MINUTE,
                "per_day": PER_DAY,
            },
            "refresh": {"watchlist": WATCHLIST, "actions_every_days": 0},
        },
        "two-nodes",
    )
    nodes: list[Node] = []
    workers: list[Worker] = []
    with FakeAlphaVantage() as fake:
        fake.limits(
            min_interval=PROVIDER_SPACING,
            per_minute=PER_MINUTE,
            per_day=PER_DAY,
            tolerance=TOLERANCE,
        )
        env = c.bench_env(
            SECRET_KEY=SECRET_KEY,
            ALLOWED_HOSTS=",".join(HOSTS.values()),
            ALPHA_VANTAGE_API_KEY=c.PROVIDER_KEY,
            ALPHA_VANTAGE_BASE_URL=fake.url,
            PAPERTRADE_CONFIG=str(config),
        )
        try:
            nodes = [Node(name, env, args.workers) for name in HOSTS]
            workers = [Worker(name, env) for name in HOSTS]
            for part in (*nodes, *workers):
                part.start()
            for part in (*nodes, *workers):
                part.wait()
            for node in nodes:  # every gunicorn worker has built the calendar, loaded Plotly
                warm = client(cookies[0])
                for _ in range(4 * args.workers):
                    warm.get(f"{node.url}/stocks/{holdings[0]}/", timeout=60)

            tickers = ["ZC1", "ZC2", "ZC3"]
            for t in tickers:  # a real call takes about that long
                fake.route(DAILY, t, fake.default_daily(t), delay=0.3)
            stampedes = {t: stampede(nodes, cookies[: args.crowd], t, fake, redis) for t in tickers}
            refreshes = two_refreshes(env, fake)
            load_started = time.time()
            loads = load(nodes, people, args.seconds)
            settle(redis)
        finally:
            for part in (*workers, *nodes):
                part.stop()
        arrivals = fake.arrivals
        violations = fake.violation_log
    redis.flushdb()

    walls = [a.wall for a in arrivals]
    minutes = Counter(int(w // 60) for w in walls)
    days = Counter(datetime.fromtimestamp(w, UTC).date() for w in walls)
    during_load = sum(1 for w in walls if w >= load_started)
    stamp_calls = [s["upstream"] for s in stampedes.values()]
    stamp_p50 = statistics.median(s["latency"]["p50"] for s in stampedes.values())
    lines = [
        f"stampede: {2 * args.crowd} concurrent first views (½ per node) × {len(tickers)} "
        f"tickers → upstream calls {stamp_calls} (want all 1); statuses "
        f"{[s['statuses'] for s in stampedes.values()]}; p50 {c.fmt_ms(stamp_p50)}",
        f"two refresh runs at once: calls per ticker {refreshes['calls']} (want all 1)",
        *(f"      run {i + 1}: {line}" for i, line in enumerate(refreshes["lines"])),
    ]
    for name, node in zip(HOSTS, nodes, strict=True):
        fig = loads[name]
        lines.append(
            f"node {name} ({node.host}, static {node.static}): {fig['requests']} requests, "
            f"{fig['per_second']:.1f}/s; " + c.stat_line("latency", fig["latency"])
        )
        lines.append(f"      statuses {fig['statuses']}; unstored tickers {fig['cold_tickers']}")
    lines.append(
        f"provider: {len(walls)} calls ({during_load} during the load), max "
        f"{max(minutes.values(), default=0)}/clock minute (limit {PER_MINUTE}), "
        f"{max(days.values(), default=0)}/day (limit {PER_DAY}), violations {len(violations)}"
    )
    c.print_block("two web nodes", cond, lines)
    ok = (
        all(x == 1 for x in stamp_calls)
        and all(v == 1 for v in refreshes["calls"].values())
        and not violations
        and max(minutes.values(), default=0) <= PER_MINUTE
    )
    rows = [
        c.row(
            "two web nodes: stampede, two refresh runs, load on both",
            "1 upstream call a cold ticker; each ticker once per refresh; no limit broken",
            f"stampede {stamp_calls}; refresh {sorted(set(refreshes['calls'].values()))}; "
            f"A {loads['A']['per_second']:.0f}/s p95 {c.fmt_ms(loads['A']['latency']['p95'])}, "
            f"B {loads['B']['per_second']:.0f}/s p95 {c.fmt_ms(loads['B']['latency']['p95'])}; "
            f"provider max {max(minutes.values(), default=0)}/min, {len(violations)} violations",
            ok,
        )
    ]
    c.save(
        "two_nodes",
        {
            "conditions": cond,
            "stampede": stampedes,
            "refresh": refreshes,
            "load": loads,
            "provider": {
                "calls": len(walls),
                "max_per_minute": max(minutes.values(), default=0),
                "per_day": max(days.values(), default=0),
                "violations": [dataclasses.asdict(v) for v in violations],
            },
            "rows": rows,
            "lines": lines,
        },
    )


if __name__ == "__main__":
    main()
