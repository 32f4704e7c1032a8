"""What every bench script shares: a dedicated database and Redis db, seeding, statistics, and
one way to print and save figures.

The scripts never touch a developer's database: they run on ``BENCH_DATABASE_URL`` (default
``postgres://postgres@127.0.0.1:5432/pt_bench``) and ``BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/10``), whatever ``DATABASE_URL``/``REDIS_URL`` say, and refuse a
database whose name does not contain "bench" (they truncate its tables and flush the Redis db).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pt_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
PROVIDER_KEY = "BENCHKEY0NOTREAL"  # only ever sent to the local fake


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of a bench process (and of the gunicorn / child processes it starts)."""
    env = dict(os.environ)
    env["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    env["CELERY_BROKER_URL"] = env["REDIS_URL"]
    env["DJANGO_SETTINGS_MODULE"] = "papertrade.settings"
    env["DEBUG"] = "false"
    env.pop("ALPHA_VANTAGE_API_KEY", None)  # offline unless a script configures the fake
    env.pop("PAPERTRADE_CONFIG", None)
    env.update(extra)
    return env


def _check_dedicated(database_url: str, redis_url: str) -> None:
    name = database_url.rsplit("/", 1)[-1].split("?")[0]
    if "bench" not in name and os.environ.get("BENCH_ALLOW_ANY_DB") != "1":
        sys.exit(
            f"bench: refusing to run on database {name!r}: the bench truncates its tables. "
            "Use a database whose name contains 'bench' (BENCH_DATABASE_URL)."
        )
    if not redis_url.startswith("redis://"):
        sys.exit("bench: BENCH_REDIS_URL must be a redis:// URL (the bench flushes that db).")


def _ensure_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[-1].split("?")[0]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup(*, child: bool = False, migrate: bool = True, **extra_env: str) -> None:
    """Point this process at the bench database and Redis db, create/migrate, django.setup().

    ``child``: a process started by a bench script with the environment it was given (a live
    provider key, a config file): keep it as it is.
    """
    env = dict(os.environ) if child else bench_env(**extra_env)
    _check_dedicated(env["DATABASE_URL"], env["REDIS_URL"])
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    RESULTS_DIR.mkdir(exist_ok=True)
    if not child:
        _ensure_database(env["DATABASE_URL"])
    import django

    django.setup()
    import logging

    # The figures are the output: per-call INFO lines (provider calls) would drown them.
    logging.getLogger().setLevel(logging.WARNING)
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


def reset_state() -> None:
    """Empty every table the bench writes and flush the bench's Redis db."""
    from django.db import connection
    from django_redis import get_redis_connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE marketdata_pricehistory, marketdata_quotawindow, portfolios_transaction, "
            "portfolios_holding, portfolios_portfolio, auth_user, django_session "
            "RESTART IDENTITY CASCADE"
        )
    get_redis_connection("default").flushdb()


# --- data -----------------------------------------------------------------------------------
def sessions(count: int, end: date | None = None) -> list[date]:
    """The last ``count`` NYSE sessions up to the latest one due now (fresh, not stale)."""
    from datetime import UTC, datetime, timedelta

    import pandas as pd

    from marketdata.port import session_date
    from marketdata.trading_calendar import latest_due_close, nyse

    if end is None:
        end = session_date(latest_due_close(datetime.now(UTC), timedelta(minutes=60)))
    cal = nyse()
    first = cal.first_session.date()
    available = len(cal.sessions_in_range(pd.Timestamp(first), pd.Timestamp(end)))
    if count <= available:
        return [s.date() for s in cal.sessions_window(pd.Timestamp(end), -count)]
    # Longer than the calendar: weekdays before it (only the row count matters then).
    days = [s.date() for s in cal.sessions_in_range(pd.Timestamp(first), pd.Timestamp(end))]
    day = first
    extra: list[date] = []
    while len(extra) < count - len(days):
        day -= timedelta(days=1)
        if day.weekday() < 5:
            extra.append(day)
    return list(reversed(extra)) + days


def synthetic_closes(ticker: str, n: int) -> list[float]:
    import random

    rng = random.Random(ticker)
    price = rng.uniform(20, 400)
    out = []
    for _ in range(n):
        price = max(price * (1 + rng.gauss(0, 0.015)), 1.0)
        out.append(price)
    return out


def seed_bars(series: dict[str, Sequence[date]], *, source: str = "import") -> int:
    """Store daily bars for each ticker over its days with COPY (fast); returns the row count."""
    from django.db import connection
    from django.utils import timezone

    from marketdata.port import close_of

    now = timezone.now()
    rows = 0
    with connection.cursor() as cursor:
        copy_sql = (
            "COPY marketdata_pricehistory (ticker, interval, timestamp, open, high, low, close, "
            "volume, source, fetched_at) FROM STDIN"
        )
        with cursor.cursor.copy(copy_sql) as copy:
            for ticker, days in series.items():
                for day, close in zip(days, synthetic_closes(ticker, len(days)), strict=True):
                    c = round(close, 4)
                    copy.write_row(
                        (
                            ticker,
                            "1d",
                            close_of(day),
                            f"{c * 0.998:.4f}",
                            f"{c * 1.01:.4f}",
                            f"{c * 0.99:.4f}",
                            f"{c:.4f}",
                            1_000_000,
                            source,
                            now,
                        )
                    )
                    rows += 1
        cursor.execute("ANALYZE marketdata_pricehistory")
    return rows


def ticker_names(count: int, prefix: str = "B") -> list[str]:
    """``count`` well-formed, distinct tickers (B0000, B0001, ...)."""
    return [f"{prefix}{i:04d}" for i in range(count)]


# --- measuring ------------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def summarize(samples_ms: Iterable[float]) -> dict:
    values = sorted(samples_ms)
    return {
        "n": len(values),
        "p50": percentile(values, 0.50),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "max": values[-1] if values else float("nan"),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


def time_calls(fn: Callable[[], object], n: int, *, before: Callable[[], object] | None = None):
    """Time ``n`` calls of ``fn`` (ms each); ``before`` runs untimed before each call."""
    samples = []
    for _ in range(n):
        if before is not None:
            before()
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def rounds_summary(per_round: list[dict], key: str = "p50") -> dict:
    """The median over rounds of each round's figure, and the spread (min, max) of ``key``."""
    out = {}
    for field in per_round[0]:
        values = [r[field] for r in per_round]
        out[field] = statistics.median(values)
    values = [r[key] for r in per_round]
    out["spread"] = (min(values), max(values))
    out["rounds"] = len(per_round)
    return out


def peak_rss_mb(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: kB


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def conditions() -> dict:
    """Where the figures were taken: machine, database, cache, data size."""
    from django.conf import settings
    from django.db import connection
    from django_redis import get_redis_connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM marketdata_pricehistory")
        bars = cursor.fetchone()[0]
    redis_info = get_redis_connection("default").info("server")
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    db = settings.DATABASES["default"]
    return {
        "machine": f"{os.cpu_count()} cores, {mem_kb / 1024 / 1024:.0f} GiB, {platform.machine()}",
        "load_average_at_start": load_average(),
        "python": platform.python_version(),
        "code": git_state(),
        "database": f"PostgreSQL {pg} {db['HOST']}:{db['PORT']}/{db['NAME']}",
        "cache": f"Redis {redis_info.get('redis_version')} "
        f"{settings.CACHES['default']['LOCATION']}",
        "price_rows": bars,
    }


def fmt_ms(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"


def print_block(title: str, cond: dict, lines: list[str]) -> None:
    print()
    print(f"== {title} ==")
    for k, v in cond.items():
        print(f"   {k}: {v}")
    print("   --")
    for line in lines:
        print(f"   {line}")
    sys.stdout.flush()


def save(name: str, payload: dict) -> Path:
    """Save figures for run_all.py: bench/results/<name>.json."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def row(what: str, target: str, measured: str, ok: bool | None, spread: str = "") -> dict:
    """One line of the targets table (PRODUCT §7)."""
    return {"what": what, "target": target, "measured": measured, "ok": ok, "spread": spread}


def stat_line(label: str, s: dict) -> str:
    spread = s.get("spread")
    extra = (
        f"  (p50 over {s['rounds']} rounds: {fmt_ms(spread[0])}–{fmt_ms(spread[1])})"
        if spread
        else ""
    )
    return (
        f"{label}: p50 {fmt_ms(s['p50'])}  p95 {fmt_ms(s['p95'])}  max {fmt_ms(s['max'])}  "
        f"n={s['n']}{extra}"
    )


# --- portfolios -----------------------------------------------------------------------------
def make_user(username: str):
    from django.contrib.auth import get_user_model

    # A password nobody types: the bench logs in with sessions made like force_login does.
    return get_user_model().objects.create_user(username=username, password=None)


def make_portfolio(owner, name: str, tickers: Sequence[str], ledger_rows: int):
    """A portfolio holding ``tickers`` whose ledger has ``ledger_rows`` rows (one deposit, then
    buys spread over the tickers and two years), with cash and holdings that agree with it."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from portfolios.models import Holding, Portfolio, Transaction

    deposit = Decimal("10000000.00")
    start = datetime.now(UTC) - timedelta(days=730)
    step = timedelta(days=730) / max(ledger_rows, 1)
    portfolio = Portfolio.objects.create(
        owner=owner, name=name, cash=deposit, net_contributions=deposit
    )
    rows = [
        Transaction(portfolio=portfolio, kind="DEPOSIT", cash_change=deposit, executed_at=start)
    ]
    held: dict[str, list[Decimal]] = {t: [Decimal(0), Decimal(0)] for t in tickers}
    spent = Decimal(0)
    for i in range(1, ledger_rows):
        ticker = tickers[i % len(tickers)]
        quantity = Decimal("1.5000")
        price = Decimal(f"{50 + (i % 97):.4f}")
        total = (quantity * price).quantize(Decimal("0.01"))
        rows.append(
            Transaction(
                portfolio=portfolio,
                kind="BUY",
                ticker=ticker,
                quantity=quantity,
                price=price,
                cash_change=-total,
                executed_at=start + step * i,
                price_source="import",
                price_as_of=start + step * i,
                price_was_stale=False,
            )
        )
        held[ticker][0] += quantity
        held[ticker][1] += total
        spent += total
    Transaction.objects.bulk_create(rows, batch_size=2000)
    Holding.objects.bulk_create(
        [
            Holding(portfolio=portfolio, ticker=t, quantity=q, cost_basis=cb)
            for t, (q, cb) in held.items()
            if q > 0
        ]
    )
    portfolio.cash = deposit - spent
    portfolio.save(update_fields=["cash"])
    return portfolio


def session_cookie(user) -> str:
    """A logged-in session for ``user``, the way the test client's force_login makes one."""
    from django.test import Client

    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client.cookies["sessionid"].value


def git_state() -> str:
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--short", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return f"{head}" + (f" + {len(dirty)} files modified in the work tree" if dirty else "")


# --- servers --------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc) -> None:
    """SIGTERM ``proc`` (a subprocess.Popen, or None) and wait; SIGKILL it after 30 s."""
    import subprocess

    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_COLLECTED: set[str] = set()


def collect_static(env: dict) -> None:
    """``collectstatic`` as production runs it (hashed, compressed), once per bench process:
    the pages a bench serves name their static files through the manifest it writes."""
    if env.get("PAPERTRADE_PLAIN_STATIC") in ("1", "true") or "collected" in _COLLECTED:
        return
    import subprocess

    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    _COLLECTED.add("collected")


class Gunicorn:
    """gunicorn serving the app on 127.0.0.1 as the Procfile does (workers × threads)."""

    def __init__(
        self,
        *,
        workers: int = 4,
        threads: int = 2,
        env: dict | None = None,
        log: Path | None = None,
        app: str = "papertrade.wsgi",
    ) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers, self.threads = workers, threads
        self.env = env or bench_env()
        self.log = log or RESULTS_DIR / "gunicorn.log"
        self.proc = None

    def __enter__(self) -> Gunicorn:
        import subprocess
        import urllib.request

        RESULTS_DIR.mkdir(exist_ok=True)
        collect_static(self.env)
        self._log = open(self.log, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "gunicorn"),
                self.app,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--threads",
                str(self.threads),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz in 60 s; see {self.log}")

    def pids(self) -> list[int]:
        """The master and its workers."""
        out = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            out += [int(p) for p in children.split()]
        except OSError:
            pass
        return out

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def __exit__(self, *exc) -> None:
        stop_process(self.proc)
        self._log.close()


class CeleryWorker:
    """A Celery worker as the Procfile runs it (prefork, ``concurrency`` processes): it runs
    the background fetches web requests hand over."""

    def __init__(self, *, env: dict, concurrency: int = 2, log: Path | None = None) -> None:
        self.env = env
        self.concurrency = concurrency
        self.log = log or RESULTS_DIR / "celery-worker.log"
        self.proc = None

    def __enter__(self) -> CeleryWorker:
        import subprocess

        RESULTS_DIR.mkdir(exist_ok=True)
        self._log = open(self.log, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "celery"),
                "-A",
                "papertrade",
                "worker",
                f"--concurrency={self.concurrency}",
                "--loglevel=INFO",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the celery worker exited; see {self.log}")
            if " ready." in self.log.read_text(errors="replace"):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"the celery worker was not ready in 60 s; see {self.log}")

    def __exit__(self, *exc) -> None:
        stop_process(self.proc)
        self._log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def bench_venv_bin(name: str) -> Path:
    """A tool of the bench's own virtualenv (var/bench-venv: locust), made by `make bench`."""
    path = ROOT / "var" / "bench-venv" / "bin" / name
    if not path.exists():
        sys.exit(
            f"bench: {path} is missing. Run `make bench` once, or: python3.11 -m venv "
            "var/bench-venv && var/bench-venv/bin/pip install -r bench/requirements.txt"
        )
    return path


def write_config(overrides: dict[str, dict[str, object]], name: str) -> Path:
    """A copy of config.toml with some keys changed, for PAPERTRADE_CONFIG in child processes."""
    import re

    lines = (ROOT / "config.toml").read_text().splitlines()
    section = ""
    out = []
    for line in lines:
        m = re.match(r"^\[(\w+)\]", line)
        if m:
            section = m.group(1)
        m = re.match(r"^(\w+)\s*=", line)
        if m and m.group(1) in overrides.get(section, {}):
            value = overrides[section][m.group(1)]
            line = f"{m.group(1)} = {json.dumps(value)}"
        out.append(line)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"config-{name}.toml"
    path.write_text("\n".join(out) + "\n")
    return path


ROOMY_QUOTA = {
    "quota": {
        "min_seconds_between_calls": 0.0,
        "per_minute": 100_000,
        "per_day": 100_000,
        "interactive_reserve": 0,
    }
}


# --- child processes started together -------------------------------------------------------
def start_children(argvs: list[list[str]], env: dict, timeout: float = 120) -> list:
    """Start processes and wait until each has printed "ready" (Django set up, warm)."""
    import subprocess

    procs = [
        subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    deadline = time.monotonic() + timeout
    for p in procs:
        line = p.stdout.readline()
        if line.strip() != "ready" or time.monotonic() > deadline:
            p.kill()
            raise RuntimeError(
                f"a bench child did not get ready: {line!r} {p.stderr.read()[-3000:]}"
            )
    return procs


def go(procs: list) -> None:
    """Release every child at once (they wait in wait_for_go)."""
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()


def collect(procs: list, timeout: float = 300) -> list[str]:
    """The last stdout line of each child (its JSON result)."""
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"a bench child failed:\n{stderr[-3000:]}")
        out.append(stdout.strip().splitlines()[-1])
    return out


def wait_for_go() -> None:
    """In a child: say ready, then block until the parent says go."""
    print("ready", flush=True)
    sys.stdin.readline()


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat): for "how shared was it"."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
