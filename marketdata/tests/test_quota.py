"""The provider's call quota holds across processes, on Redis and on the database.

Timing tests measure with a monotonic clock and generous bounds: they check that a wait happened
and that nothing waited for long, never a precise duration.
"""

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from conftest import on_postgres, on_redis
from marketdata.models import QuotaWindow
from marketdata.port import MarketDataUnavailable, RateLimited
from marketdata.quota import (
    DAY_PREFIX,
    KEY_PREFIX,
    MINUTE_PREFIX,
    DatabaseQuota,
    Priority,
    QuotaStoreUnavailable,
    RedisQuota,
    get_quota,
    next_utc_midnight,
)
from marketdata.testing import FakeAlphaVantage
from papertrade.config import QuotaConfig

pytestmark = pytest.mark.django_db

BASE_DIR = Path(settings.BASE_DIR)
SCHEDULED = (Priority.HELD, Priority.WATCHLIST, Priority.BACKFILL)


def limits(spacing=0.0, per_minute=100, per_day=100, reserve=0) -> QuotaConfig:
    return QuotaConfig(
        min_seconds_between_calls=spacing,
        per_minute=per_minute,
        per_day=per_day,
        interactive_reserve=reserve,
    )


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
def make_quota(request):
    """Build a quota on one backend; two quotas built here share one store, like two processes."""
    if request.param == "redis":
        from django_redis import get_redis_connection

        client = get_redis_connection("default")
        for key in client.scan_iter(KEY_PREFIX + "*"):
            client.delete(key)
        return lambda config: RedisQuota(config)
    return lambda config: DatabaseQuota(config)


def away_from_the_minute_edge():
    """Counting tests take well under a second; start them where no new minute (or day) begins."""
    seconds = time.time() % 60
    if seconds > 57:
        time.sleep(60.05 - seconds)


def refusal(quota, priority=Priority.INTERACTIVE, wait=0.0) -> RateLimited:
    with pytest.raises(RateLimited) as caught:
        quota.acquire(priority=priority, wait=wait)
    return caught.value


# --- Spacing ---------------------------------------------------------------------------------
def test_a_second_call_within_the_spacing_is_refused(make_quota):
    quota = make_quota(limits(spacing=5))
    quota.acquire(priority=Priority.INTERACTIVE)
    refused = refusal(make_quota(limits(spacing=5)))  # another process, same store
    assert refused.scope == "second"
    now = datetime.now(UTC)
    assert now < refused.retry_at <= now + timedelta(seconds=5.5)
    assert "spaced 5 s apart" in str(refused)


def test_a_caller_willing_to_wait_gets_the_call_once_the_spacing_allows(make_quota):
    quota = make_quota(limits(spacing=0.4))
    quota.acquire(priority=Priority.INTERACTIVE)
    started = time.monotonic()
    quota.acquire(priority=Priority.HELD, wait=3)
    assert 0.25 <= time.monotonic() - started < 2.5


def test_a_caller_does_not_sleep_for_a_slot_it_would_not_wait_for(make_quota):
    quota = make_quota(limits(spacing=5))
    quota.acquire(priority=Priority.INTERACTIVE)
    started = time.monotonic()
    assert refusal(quota, wait=0.5).scope == "second"
    assert time.monotonic() - started < 0.4


# --- Minute and day --------------------------------------------------------------------------
def test_no_more_than_the_per_minute_calls_in_a_clock_minute(make_quota):
    away_from_the_minute_edge()
    quota = make_quota(limits(per_minute=3))
    for _ in range(3):
        quota.acquire(priority=Priority.INTERACTIVE)
    refused = refusal(quota)
    assert refused.scope == "minute"
    assert refused.retry_at.second == 0 and refused.retry_at.microsecond == 0
    assert datetime.now(UTC) < refused.retry_at <= datetime.now(UTC) + timedelta(seconds=60)


def test_no_more_than_the_per_day_calls_and_nobody_waits_for_the_next_day(make_quota):
    away_from_the_minute_edge()
    quota = make_quota(limits(per_day=3))
    for _ in range(3):
        quota.acquire(priority=Priority.INTERACTIVE)
    started = time.monotonic()
    refused = refusal(quota, wait=30)
    assert time.monotonic() - started < 1
    assert refused.scope == "day"
    assert refused.retry_at == next_utc_midnight(datetime.now(UTC))


def test_scheduled_work_leaves_the_interactive_reserve_to_people(make_quota):
    away_from_the_minute_edge()
    quota = make_quota(limits(per_day=5, reserve=2))
    for priority in (Priority.HELD, Priority.WATCHLIST, Priority.BACKFILL):
        quota.acquire(priority=priority)
    for priority in SCHEDULED:
        assert refusal(quota, priority).scope == "day"
    quota.acquire(priority=Priority.INTERACTIVE)
    quota.acquire(priority=Priority.INTERACTIVE)
    assert refusal(quota, Priority.INTERACTIVE).scope == "day"


# --- Closing the window ----------------------------------------------------------------------
def test_a_rate_limit_answer_closes_the_window_for_everyone_until_it_frees_up(make_quota):
    adapter, other_process = make_quota(limits()), make_quota(limits())
    until = datetime.now(UTC) + timedelta(seconds=0.6)
    adapter.close_until(until)
    for priority in Priority:
        refused = refusal(other_process, priority, wait=5)  # nobody waits out a closed window
        assert refused.scope == "upstream"
        assert abs((refused.retry_at - until).total_seconds()) < 0.001
    time.sleep(0.7)
    other_process.acquire(priority=Priority.BACKFILL)


def test_a_short_close_does_not_reopen_a_longer_one(make_quota):
    quota = make_quota(limits())
    tomorrow = next_utc_midnight(datetime.now(UTC))
    quota.close_until(tomorrow, scope="day")
    quota.close_until(datetime.now(UTC) + timedelta(seconds=2))
    refused = refusal(quota)
    assert (refused.scope, refused.retry_at) == ("day", tomorrow)
    assert "answered with a rate limit (day)" in str(refused)


def test_a_close_needs_an_aware_time(make_quota):
    with pytest.raises(ValueError, match="aware"):
        make_quota(limits()).close_until(datetime(2030, 1, 1))


# --- Status ----------------------------------------------------------------------------------
def test_status_says_what_is_used_and_left(make_quota):
    away_from_the_minute_edge()
    quota = make_quota(limits(spacing=30, per_minute=5, per_day=10, reserve=4))
    empty = quota.status()
    assert (empty.used_day, empty.left_day, empty.left_day_scheduled) == (0, 10, 6)
    assert empty.next_call_at is None and empty.closed_until is None
    quota.acquire(priority=Priority.HELD)
    status = quota.status()
    assert (status.used_minute, status.used_day) == (1, 1)
    assert status.used_second in (0, 1)  # 1 unless a new second began since the call
    assert (status.left_minute, status.left_day, status.left_day_scheduled) == (4, 9, 5)
    assert datetime.now(UTC) < status.next_call_at <= datetime.now(UTC) + timedelta(seconds=30)
    assert status.used_day_by_priority[Priority.HELD] == 1
    assert status.used_day_by_priority[Priority.INTERACTIVE] == 0
    until = datetime.now(UTC) + timedelta(minutes=5)
    quota.close_until(until)
    closed = quota.status()
    assert abs((closed.closed_until - until).total_seconds()) < 0.001
    assert closed.closed_scope == "upstream"


# --- Backends --------------------------------------------------------------------------------
def test_the_quota_follows_the_cache_backend():
    on_redis = settings.CACHES["default"]["BACKEND"].startswith("django_redis.")
    assert isinstance(get_quota(), RedisQuota if on_redis else DatabaseQuota)


def test_without_redis_no_call_is_made():
    import redis
    from django_redis.cache import RedisCache

    # A raw client built the way settings build the cache's, pointed where nothing listens.
    options = settings.CACHES["default"].get("OPTIONS", {}) if on_redis() else {}
    down = RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": options}).client.get_client()
    quota = RedisQuota(limits(), client=down)
    started = time.monotonic()
    for priority in Priority:
        with pytest.raises(QuotaStoreUnavailable) as caught:
            quota.acquire(priority=priority, wait=1)
        assert isinstance(caught.value, MarketDataUnavailable)
        assert isinstance(caught.value.__cause__, redis.exceptions.RedisError)
    with pytest.raises(QuotaStoreUnavailable):
        quota.close_until(datetime.now(UTC) + timedelta(seconds=1))
    with pytest.raises(QuotaStoreUnavailable):
        quota.status()
    assert time.monotonic() - started < 5  # refused at once, not after a wait


@pytest.mark.redis
def test_the_redis_keys_are_named_and_expire():
    from django_redis import get_redis_connection

    client = get_redis_connection("default")
    away_from_the_minute_edge()
    RedisQuota(limits()).acquire(priority=Priority.HELD)
    now = datetime.now(UTC)
    day_key = f"{DAY_PREFIX}{now:%Y%m%d}"
    minute_key = f"{MINUTE_PREFIX}{int(now.timestamp()) // 60}"
    assert client.get(day_key) == b"1" and client.get(day_key + ":p1") == b"1"
    assert client.get(minute_key) == b"1"
    assert 0 < client.ttl(minute_key) <= 120
    assert 0 < client.ttl(day_key) <= 2 * 86400


@pytest.mark.django_db(transaction=True)
def test_the_database_quota_refuses_to_count_inside_a_transaction_that_could_roll_back():
    quota = DatabaseQuota(limits())
    with pytest.raises(RuntimeError), transaction.atomic():
        quota.acquire(priority=Priority.INTERACTIVE)
    quota.acquire(priority=Priority.INTERACTIVE)  # outside one, it counts
    assert quota.status().used_day == 1


def test_the_database_quota_prunes_windows_that_are_over():
    old = datetime.now(UTC) - timedelta(days=3)
    QuotaWindow.objects.create(key=f"{MINUTE_PREFIX}1", count=5, expires_at=old)
    DatabaseQuota(limits()).acquire(priority=Priority.INTERACTIVE)
    assert not QuotaWindow.objects.filter(key=f"{MINUTE_PREFIX}1").exists()
    assert QuotaWindow.objects.filter(key__startswith=DAY_PREFIX).exists()


# --- Many processes, one quota ---------------------------------------------------------------
# Small limits so a few seconds exercise all of them: spacing, the minute (8 < the day's 10)
# and the reserve (scheduled work stops at 10 - 4 = 6). A run that crosses a minute boundary
# may also reach the day's 10.
CROSS = limits(spacing=0.3, per_minute=8, per_day=10, reserve=4)
HAMMER_SECONDS = 4.0
WORKERS = [Priority.INTERACTIVE, Priority.INTERACTIVE, Priority.HELD, Priority.WATCHLIST,
           Priority.BACKFILL]  # fmt: skip
# The server timestamps arrivals; a call leaves a few milliseconds after its acquire and that
# latency varies (loopback TCP, five busy processes on a small machine). Arrivals may be this
# much closer than the spacing, and may count in the minute before a boundary.
ARRIVAL_TOLERANCE = 0.1

WORKER_CODE = """
import django
django.setup()
from marketdata.tests.test_quota import hammer
hammer()
"""


def hammer() -> None:
    """One worker process: from "go", take calls from the quota and make them, for a while."""
    import requests

    job = json.loads(os.environ["QUOTA_HAMMER"])
    quota = RedisQuota() if job["backend"] == "redis" else DatabaseQuota()
    priority = Priority[job["priority"]]
    quota.status()  # connect and warm up before the start line
    print("ready", flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + job["seconds"]
    calls, refused = 0, Counter()
    while time.monotonic() < deadline:
        try:
            quota.acquire(priority=priority, wait=0.5)
        except RateLimited as exc:
            refused[exc.scope] += 1
            time.sleep(0.01)
            continue
        apikey = f"{priority.name}.{os.getpid()}"
        params = {"function": "TIME_SERIES_DAILY", "symbol": "IBM", "apikey": apikey}
        requests.get(job["url"], params=params, timeout=5)
        calls += 1
    print(json.dumps({"calls": calls, "refused": refused}), flush=True)


def config_file(tmp_path, config: QuotaConfig) -> Path:
    text = (BASE_DIR / "config.toml").read_text(encoding="utf-8")
    for name in ("min_seconds_between_calls", "per_minute", "per_day", "interactive_reserve"):
        text = re.sub(rf"(?m)^{name} = .*$", f"{name} = {getattr(config, name)}", text)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run_workers(backend: str, env: dict, url: str) -> list[dict]:
    processes = []
    for priority in WORKERS:
        job = {"backend": backend, "priority": priority.name, "url": url,
               "seconds": HAMMER_SECONDS}  # fmt: skip
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER_CODE],
                env={**env, "QUOTA_HAMMER": json.dumps(job)},
                cwd=BASE_DIR,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready", process.communicate()[1]
        for process in processes:  # all start together
            process.stdin.write("go\n")
            process.stdin.flush()
        results = []
        for process in processes:
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
            results.append(json.loads(out.splitlines()[-1]))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()


def assert_upstream_saw_no_more_than_the_limits(fake: FakeAlphaVantage, results: list[dict]):
    arrivals = fake.arrivals
    assert fake.violations == 0, fake.violation_log
    # Every call a worker took reached the server, and nothing else did.
    assert sum(r["calls"] for r in results) == len(arrivals)
    gaps = [b.monotonic - a.monotonic for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert min(gaps) >= CROSS.min_seconds_between_calls - ARRIVAL_TOLERANCE
    assert max(Counter(int(a.wall // 60) for a in arrivals).values()) <= CROSS.per_minute + 1
    assert CROSS.per_minute <= len(arrivals) <= CROSS.per_day  # it let calls through, not more
    # Scheduled work took none of the reserve: after call 6, only people's calls went out.
    scheduled_share = CROSS.per_day - CROSS.interactive_reserve
    kinds = [a.apikey.split(".")[0] for a in arrivals]
    assert all(kind == "INTERACTIVE" for kind in kinds[scheduled_share:]), kinds
    assert sum(kind != "INTERACTIVE" for kind in kinds) <= scheduled_share
    assert any(r["refused"].get("day") for r in results[2:]), results


@pytest.fixture
def limits_server():
    with FakeAlphaVantage(as_of=datetime(2023, 11, 10).date()) as fake:
        fake.limits(
            min_interval=CROSS.min_seconds_between_calls,
            per_minute=CROSS.per_minute,
            per_day=CROSS.per_day,
            tolerance=ARRIVAL_TOLERANCE,
        )
        yield fake


def worker_env(tmp_path, **overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DJANGO_SETTINGS_MODULE="papertrade.settings",
        PAPERTRADE_CONFIG=str(config_file(tmp_path, CROSS)),
        PYTHONPATH=str(BASE_DIR),
    )
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


@pytest.mark.redis
def test_processes_sharing_redis_never_push_upstream_past_the_limits(tmp_path, limits_server):
    env = worker_env(tmp_path, REDIS_URL=settings.REDIS_URL)
    results = run_workers("redis", env, limits_server.url)
    assert_upstream_saw_no_more_than_the_limits(limits_server, results)


def test_processes_sharing_an_sqlite_file_never_push_upstream_past_the_limits(
    tmp_path, limits_server
):
    # The test database may live in memory, where no other process can see it: the workers
    # share a file of their own, as the embedded default's processes do.
    env = worker_env(
        tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'quota.sqlite3'}", REDIS_URL=None
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "marketdata", "--noinput", "-v", "0"],
        env=env, cwd=BASE_DIR, check=True,
    )  # fmt: skip
    results = run_workers("database", env, limits_server.url)
    assert_upstream_saw_no_more_than_the_limits(limits_server, results)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_processes_sharing_postgresql_never_push_upstream_past_the_limits(tmp_path, limits_server):
    assert on_postgres()
    db = settings.DATABASES["default"]  # pytest-django's test database: the workers use it too
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    url = f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    results = run_workers("database", worker_env(tmp_path, DATABASE_URL=url), limits_server.url)
    assert_upstream_saw_no_more_than_the_limits(limits_server, results)
