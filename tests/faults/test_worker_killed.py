"""A Celery worker is killed (SIGKILL) in the middle of the scheduled refresh.

A real worker (prefork, ``--concurrency=1`` as in the Procfile) on a Redis broker the test owns
runs ``marketdata.refresh_prices`` while the fake provider holds one ticker's answer back; the
test kills the worker and its pool child then, and starts another. ``acks_late`` means the task
was never acknowledged, so the broker hands it to the new worker, which finishes the refresh:
the tickers the dead worker stored are fresh and skipped, so the only ticker asked twice is the
one in flight when it died.

Redis redelivers an unacknowledged task once its ``visibility_timeout`` has passed (one hour by
default, longer than the task's 15-minute time limit, as it must be); the test's workers use
5 s so that the story takes seconds. Which timeout applies is the broker's business; that the
task is redelivered at all is what ``acks_late`` and the app's idempotence promise.

Prefork, not ``--pool=solo``: the solo pool runs the task inside the consumer before its early
acknowledgement reaches Redis, so there even a task without ``acks_late`` comes back, and the
test could not tell the difference.
"""

import os
import re
import signal
import time

import pytest

from conftest import PROVIDER_KEY
from tests.faults.conftest import wait_for, write_config

# The app under test has its own database; this mark only makes the session set up the test
# database, which the root conftest's cache-clearing fixture talks to.
pytestmark = pytest.mark.django_db

DAILY = "TIME_SERIES_DAILY"
WATCHLIST = ["GOOGL", "AMZN", "NVDA", "META", "NFLX"]  # no saved fixtures: fresh generated bars
SLOW = "NVDA"
VISIBILITY_TIMEOUT = 5
LOCK_NVDA = "papertrade:1:md:v2:lock:NVDA"

WORKER = """
import sys
from papertrade.celery import app
app.conf.broker_transport_options = {{
    "visibility_timeout": {timeout},
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}}
app.worker_main(["worker", "--concurrency=1", "--loglevel=INFO", "-n", sys.argv[1],
                 "--without-mingle", "--without-gossip", "--without-heartbeat"])
"""


def test_a_refresh_killed_mid_run_is_redelivered_and_spends_no_call_twice(
    tmp_path, redis_server, make_app, fake_av, celery_worker
):
    watchlist = "[" + ", ".join(f'"{t}"' for t in WATCHLIST) + "]"
    config = write_config(
        tmp_path / "config.toml",
        min_seconds_between_calls="0.0",
        per_minute="1000",
        per_day="1000",
        watchlist=watchlist,
    )
    app = make_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite3'}",
            "REDIS_URL": redis_server.url,
            "CELERY_BROKER_URL": redis_server.url.replace("/0", "/1"),
            "ALPHA_VANTAGE_API_KEY": PROVIDER_KEY,
            "ALPHA_VANTAGE_BASE_URL": fake_av.url,
            "PAPERTRADE_CONFIG": str(config),
        }
    )
    app.setup()
    fake_av.route(DAILY, SLOW, fake_av.default_daily(SLOW), delay=120.0)
    worker = WORKER.format(timeout=VISIBILITY_TIMEOUT)
    second_log = tmp_path / "worker-b.log"  # celery_worker logs to tmp_path/<name>.log
    first = celery_worker(app, "worker-a", code=worker)
    app.python("from marketdata.tasks import refresh_prices_task\nrefresh_prices_task.delay()\n")
    sent = time.monotonic()
    wait_for(lambda: fake_av.count(DAILY, SLOW) == 1, what=f"the worker to ask for {SLOW}")
    assert [fake_av.count(DAILY, t) for t in WATCHLIST[:2]] == [1, 1]

    os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool child, as an OOM kill
    first.wait(timeout=60)

    # The provider answers promptly again. The dead worker's single-flight lock on the
    # ticker it was fetching expires by itself (30 s), and the broker's visibility timeout
    # passes; then a new worker starts.
    fake_av.route(DAILY, SLOW, fake_av.default_daily(SLOW))
    raw = redis_server.client()
    wait_for(lambda: not raw.exists(LOCK_NVDA), what="the dead worker's lock to expire")
    time.sleep(max(0.0, sent + VISIBILITY_TIMEOUT + 1 - time.monotonic()))
    celery_worker(app, "worker-b", code=worker)

    done = re.compile(r"Task marketdata\.refresh_prices\[[^\]]+\] succeeded in [^:]+: '(.*)'")
    wait_for(lambda: done.search(second_log.read_text(errors="replace")), what="the refresh")

    summary = done.search(second_log.read_text(errors="replace")).group(1)
    # The plan takes the watchlist by name (none had a bar): AMZN, GOOGL, META and NFLX were
    # stored before NVDA hung; the redelivered run (its own run lock taken back) fetches NVDA
    # and IBM, whose stored 2023 bars make it a backfill ticker of the plan.
    assert "refreshed=2 skipped_fresh=4 failed=0 deferred=0" in summary, summary
    calls = {t: fake_av.count(DAILY, t) for t in [*WATCHLIST, "IBM"]}
    # Each ticker once, but the one in flight when the worker died: once more.
    assert calls == {"GOOGL": 1, "AMZN": 1, "NVDA": 2, "META": 1, "NFLX": 1, "IBM": 1}
