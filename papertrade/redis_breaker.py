"""A Redis client that stops asking a Redis it cannot reach, for a while, in this process.

With Redis partitioned away every command waits its full socket timeout before failing. The
cache ignores the failure (the database tier answers), but a page makes several cache calls:
at 0.2 s each a partition would still cost a second a page. After ``failures`` failed commands
in a row this client fails every command at once, without touching the network, for
``skip_seconds``; then one command is let through to try, and its outcome closes or reopens
the breaker. A partition then costs one timeout per interval per process, not one per call.

django-redis builds its clients from ``OPTIONS["REDIS_CLIENT_CLASS"]`` (every cache call, the
quota's Lua script and the hit counters' pipeline go through one), and turns the
``ConnectionError`` raised here into a cache miss (``IGNORE_EXCEPTIONS``); the quota, which
fails closed, refuses the upstream call.
"""

from __future__ import annotations

import logging
import threading
import time

from redis.client import Pipeline, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

FAILURES = (RedisConnectionError, RedisTimeoutError, OSError)


class SkippedWhileUnreachable(RedisConnectionError):
    """Not sent: Redis failed repeatedly just now, and this process is leaving it alone."""


class Breaker:
    """Consecutive failures → open for ``skip_seconds`` → one trial. Thread-safe."""

    def __init__(self, failures: int, skip_seconds: float, clock=time.monotonic) -> None:
        self.failures_to_open = failures
        self.skip_seconds = skip_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until = 0.0
        self._trial = False

    def allow(self) -> bool:
        with self._lock:
            if self._failures < self.failures_to_open:
                return True
            if self.clock() < self._open_until or self._trial:
                return False
            self._trial = True  # one command tries; the rest keep skipping until it answers
            return True

    def succeeded(self) -> None:
        with self._lock:
            if self._failures >= self.failures_to_open:
                logger.warning("Redis answers again: the cache is used again in this process")
            self._failures, self._trial = 0, False

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial = False
            if self._failures == self.failures_to_open:
                logger.error(
                    "Redis failed %d times in a row: this process skips it for %g s at a time "
                    "until it answers",
                    self._failures,
                    self.skip_seconds,
                )
            if self._failures >= self.failures_to_open:
                self._open_until = self.clock() + self.skip_seconds


_breaker: Breaker | None = None
_breaker_lock = threading.Lock()


def breaker() -> Breaker:
    """This process's breaker, sized from config.toml's [timeouts]."""
    global _breaker
    if _breaker is None:
        with _breaker_lock:
            if _breaker is None:
                from django.conf import settings

                t = settings.PAPERTRADE.timeouts
                _breaker = Breaker(t.cache_failures_to_skip, t.cache_skip_seconds)
    return _breaker


def reset() -> None:
    """Forget the breaker (tests; a process whose settings changed)."""
    global _breaker
    with _breaker_lock:
        _breaker = None


def _guarded(send):
    b = breaker()
    if not b.allow():
        raise SkippedWhileUnreachable("Redis is being skipped after repeated failures")
    try:
        result = send()
    except FAILURES:
        b.failed()
        raise
    b.succeeded()
    return result


class GuardedPipeline(Pipeline):
    def execute(self, raise_on_error: bool = True):
        if not self.command_stack and not self.watching:
            return []
        return _guarded(lambda: super(GuardedPipeline, self).execute(raise_on_error))


class BreakerRedis(Redis):
    """``redis.Redis`` whose commands and pipelines go through this process's breaker."""

    def execute_command(self, *args, **options):
        return _guarded(lambda: super(BreakerRedis, self).execute_command(*args, **options))

    def pipeline(self, transaction=True, shard_hint=None) -> Pipeline:
        return GuardedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
