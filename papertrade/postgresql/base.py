"""Django's PostgreSQL backend with a client-side bound on every wait for the server.

``statement_timeout`` is the server's own limit, and TCP keepalives and ``tcp_user_timeout``
end a connection whose packets are lost. Neither helps when the server, or something on the way
to it, holds the connection open and answers nothing (a partition behind a proxy, a server that
stopped reading): the client then waits for a reply that never comes, and libpq has no query
timeout of its own. psycopg 3 does every wait on the socket through ``Connection.wait``, so a
connection class that gives each wait a deadline bounds all of them: queries, fetches, commits,
and Django's health check.

- In a web request (:func:`request_deadline`, set by ``DatabaseUnavailableMiddleware``) the
  request's database work shares one budget, ``[timeouts] web_statement_seconds``; a new
  connection gets at most what is left of it, and none at all once it is spent. Django's health
  check of a reused connection gets at most ``HEALTH_CHECK_SECONDS`` of it, so a dead connection
  leaves time to open a new one.
- Anywhere else (commands, Celery tasks) each wait gets ``task_statement_seconds`` plus a margin:
  the server's own limit fires first whenever the server is there to fire it.

A wait that runs out closes the connection (its state is unknown) and raises
``OperationalError``, which the 503 page turns into "the database is not answering". A COMMIT
that went unanswered may have been applied: :func:`commit_outcome_unknown` says so, and the page
then says the action may have been saved.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator

import psycopg
from django.conf import settings
from django.db.backends.postgresql import base
from psycopg import errors

HEALTH_CHECK_SECONDS = 1.0
TASK_MARGIN_SECONDS = 10.0

_local = threading.local()


@contextlib.contextmanager
def request_deadline(seconds: float) -> Iterator[None]:
    """Every wait on PostgreSQL in this thread ends ``seconds`` from now at the latest."""
    outer = getattr(_local, "until", None)
    _local.until = time.monotonic() + seconds
    try:
        yield
    finally:
        _local.until = outer


def _left() -> float | None:
    until = getattr(_local, "until", None)
    return None if until is None else until - time.monotonic()


def _wait_limit() -> float:
    left, cap = _left(), getattr(_local, "cap", None)
    if left is None:
        left = settings.PAPERTRADE.timeouts.task_statement_seconds + TASK_MARGIN_SECONDS
    return left if cap is None else min(left, cap)


class _OutOfTime(errors.OperationalError):
    """The deadline came before the wait could start: nothing was sent."""


class _NoAnswer(_OutOfTime):
    """Sent, and no answer by the deadline: the server may or may not have done it."""


def commit_outcome_unknown(*, clear: bool = False) -> bool:
    """Whether a COMMIT in this thread went unanswered (it may have been applied) since the
    last ``clear``."""
    unknown = getattr(_local, "commit_unknown", False)
    if clear:
        _local.commit_unknown = False
    return unknown


class DeadlineConnection(psycopg.Connection):
    """A psycopg connection whose every wait on the server ends by :func:`_wait_limit`."""

    def wait(self, gen, interval: float = 0.1, timeout: float | None = None):
        limit = _wait_limit()
        if timeout is not None:
            limit = min(limit, timeout)
        if limit <= 0:
            gen.close()
            raise _OutOfTime("no time left to wait for PostgreSQL in this request")
        try:
            return super().wait(gen, interval=interval, timeout=limit)
        except errors._WaitTimeout:
            if timeout is not None and limit == timeout:
                raise  # the caller's own timeout: theirs to handle
            self.pgconn.finish()  # halfway through a conversation: never reuse it
            raise _NoAnswer(f"PostgreSQL did not answer within {limit:.1f} s") from None

    def commit(self) -> None:
        try:
            super().commit()
        except _NoAnswer:
            _local.commit_unknown = True  # the 503 page must not say "nothing was changed"
            raise


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        left = _left()
        if left is not None:
            if left <= 0:
                raise _OutOfTime("no time left to connect to PostgreSQL in this request")
            configured = float(params.get("connect_timeout") or math.inf)
            params["connect_timeout"] = max(2, math.ceil(min(configured, left)))  # libpq: ≥ 2
        return params

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if not self.pool:
            connection.__class__ = DeadlineConnection  # adds behaviour only, no state
        return connection

    def is_usable(self) -> bool:
        _local.cap = HEALTH_CHECK_SECONDS
        try:
            return super().is_usable()
        finally:
            _local.cap = None
