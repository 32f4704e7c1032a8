"""Bounded waits: what each process is told to wait at most, and the per-process Redis breaker."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from papertrade.redis_breaker import Breaker, BreakerRedis, SkippedWhileUnreachable

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'db': s.DATABASES['default'].get('OPTIONS', {}), "
    "'cache': s.CACHES['default'].get('OPTIONS', {}), "
    "'broker': s.CELERY_BROKER_TRANSPORT_OPTIONS, "
    "'broker_timeout': s.CELERY_BROKER_CONNECTION_TIMEOUT}))"
)


def settings_of(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERTRADE_PROCESS")}
    env.update(
        DJANGO_SETTINGS_MODULE="papertrade.settings",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/nowhere",
        REDIS_URL="redis://127.0.0.1:6379/3",
        **extra,
    )
    env.pop("CELERY_BROKER_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_postgresql_waits_are_bounded_shorter_in_a_web_process():
    task = settings_of()["db"]
    web = settings_of(PAPERTRADE_PROCESS="web")["db"]
    assert task["connect_timeout"] == web["connect_timeout"] == 3
    assert task["options"] == "-c statement_timeout=600000"  # commands and tasks: 10 minutes
    assert web["options"] == "-c statement_timeout=4000"  # a web request: 4 s
    assert web["keepalives"] == 1 and web["tcp_user_timeout"] == 4000


def test_redis_and_the_broker_answer_within_their_timeouts():
    found = settings_of()
    assert found["cache"]["SOCKET_TIMEOUT"] == found["cache"]["SOCKET_CONNECT_TIMEOUT"] == 0.2
    assert found["cache"]["REDIS_CLIENT_CLASS"] == "papertrade.redis_breaker.BreakerRedis"
    assert found["broker"]["socket_timeout"] == found["broker_timeout"] == 2.0
    # A task whose worker died comes back after the longest a task may run, not an hour.
    assert found["broker"]["visibility_timeout"] == 16 * 60


def test_the_breaker_skips_after_repeated_failures_then_tries_once():
    now = [0.0]
    b = Breaker(failures=3, skip_seconds=10, clock=lambda: now[0])
    for _ in range(2):
        assert b.allow()
        b.failed()
    assert b.allow()  # two failures: still asking
    b.failed()
    assert not b.allow()  # the third opens it
    now[0] = 9.9
    assert not b.allow()
    now[0] = 10.0
    assert b.allow()  # one trial...
    assert not b.allow()  # ...and only one at a time
    b.failed()
    assert not b.allow()  # failed: open again for another interval
    now[0] = 20.1
    assert b.allow()
    b.succeeded()
    assert b.allow() and b.allow()  # answered: closed


def test_a_partitioned_redis_costs_one_timeout_per_interval(monkeypatch):
    """Through the client django-redis uses: after the failures that open it, commands fail at
    once without a connection being tried."""
    import papertrade.redis_breaker as rb

    monkeypatch.setattr(rb, "_breaker", Breaker(failures=2, skip_seconds=60))
    attempts = []

    def unreachable(self, *args, **options):
        attempts.append(args[0])
        raise RedisTimeoutError("Timeout reading from socket")

    monkeypatch.setattr("redis.client.Redis.execute_command", unreachable)
    monkeypatch.setattr("redis.client.Pipeline.execute", lambda self, raise_on_error=True: [])
    client = BreakerRedis()
    for _ in range(2):
        with pytest.raises(RedisTimeoutError):
            client.get("k")
    for _ in range(50):
        with pytest.raises(SkippedWhileUnreachable):
            client.get("k")
    pipe = client.pipeline()
    pipe.set("a", 1)
    with pytest.raises(RedisConnectionError):
        pipe.execute()
    assert attempts == ["GET", "GET"]  # 52 commands, 2 tried


# --- our own bound on every wait for PostgreSQL (papertrade/postgresql/base.py) ----------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_wait_for_postgresql_ends_at_the_request_deadline_and_the_next_one_reconnects():
    import time

    from django.db import OperationalError, connection

    from papertrade.postgresql.base import request_deadline

    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")  # the server's own limit out of the way
    started = time.monotonic()
    late = pytest.raises(OperationalError, match="did not answer within")
    with request_deadline(0.5), late, connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(3)")
    assert 0.4 <= time.monotonic() - started < 1.5
    assert connection.connection.closed  # halfway through a conversation: dropped
    connection.close_if_unusable_or_obsolete()  # what Django does at the end of a request
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_out_of_time_does_not_send_its_query():
    from django.db import OperationalError, connection

    from papertrade.postgresql.base import request_deadline

    connection.ensure_connection()
    refused = pytest.raises(OperationalError, match="no time left")
    with request_deadline(0), refused, connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert not connection.connection.closed  # nothing was sent: the connection is intact
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)
