"""The cache hit ratio of current-price reads, for the staff status page.

Batch reads (``get_current_prices``: pages and their polling) count the tickers their one
``get_many`` found (hits, the negative cache included) and missed. Counted on Redis only
(``INCRBY``, atomic across processes); on the embedded database cache an increment is a read
plus a write of the cache table, not atomic, and the status page says the ratio is not
measured. Counting never fails a page: a Redis error is ignored, like every cache error.

Hits and misses are added up in this process and sent to Redis at most every
``FLUSH_SECONDS``, so a page costs no extra round-trip for them. Accepted imprecision: counts not
yet sent are lost if the process dies, and the ratio lags by that interval.
"""

from __future__ import annotations

import threading
import time

from django.core.cache import cache
from django.utils import timezone

HITS_KEY = "md:v1:stats:current-hits"
MISSES_KEY = "md:v1:stats:current-misses"
SINCE_KEY = "md:v1:stats:since"  # epoch seconds of the first counted read
FLUSH_SECONDS = 10.0

_pending = {"hits": 0, "misses": 0, "since": 0.0}
_lock = threading.Lock()


def counted() -> bool:
    """True when the cache can count reads cheaply: an atomic increment on Redis."""
    from django.core.cache import caches
    from django_redis.cache import RedisCache

    return isinstance(caches["default"], RedisCache)


def count_reads(*, hits: int, misses: int) -> None:
    """Add one batch read's hits and misses to the shared counters (see the module's text)."""
    if not counted() or not (hits or misses):
        return
    now = time.monotonic()
    with _lock:
        _pending["hits"] += hits
        _pending["misses"] += misses
        if not _pending["since"]:
            _pending["since"] = now
        if now - _pending["since"] < FLUSH_SECONDS:
            return
        hits, misses = _pending["hits"], _pending["misses"]
        _pending.update(hits=0, misses=0, since=now)
    flush(hits=hits, misses=misses)


def flush(*, hits: int | None = None, misses: int | None = None) -> None:
    """Send counted reads to Redis now (this process's pending ones by default): one
    pipelined round-trip."""
    import redis
    from django_redis import get_redis_connection

    if hits is None:
        with _lock:
            hits, misses = _pending["hits"], _pending["misses"]
            _pending.update(hits=0, misses=0, since=0.0)
    if not (hits or misses):
        return
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        if hits:
            pipe.incrby(cache.make_key(HITS_KEY), hits)
        if misses:
            pipe.incrby(cache.make_key(MISSES_KEY), misses)
        # A bare int is what django-redis stores for ints, so cache.get reads it back.
        pipe.set(cache.make_key(SINCE_KEY), int(timezone.now().timestamp()), nx=True)
        pipe.execute()
    except redis.RedisError:
        pass
