"""A circuit breaker in front of the provider, shared by every process through the cache.

After ``[breaker] failures_to_open`` failed calls in a row (timeouts, refused connections,
outage pages, garbage: :class:`MarketDataUnavailable` that is neither a rate limit nor a
misconfiguration) the circuit opens: for ``open_seconds`` nobody calls, and callers get
:class:`CircuitOpen` (a :class:`MarketDataUnavailable`, so pages serve stored prices). Then one
trial call is let through: a success closes the circuit, a failure opens it again at once.
Rate limits are the quota's business (``Quota.close_until``), and a misconfiguration needs an
operator; neither counts here.

Accepted imprecision: on the database cache (the embedded default) the failure count is a
read-then-write, so two processes failing at the same instant may count once; the circuit then
opens one failure later. On Redis ``incr`` is atomic. If the cache itself is down the circuit
reads as closed; the quota fails closed then, so no call is made anyway.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from marketdata.port import MarketDataUnavailable

logger = logging.getLogger(__name__)

FAILURES_KEY = "md:v1:breaker:failures"  # failed calls in a row, while closed
OPEN_KEY = "md:v1:breaker:open-until"  # while open: when the trial call may go (UTC)
TRIPPED_KEY = "md:v1:breaker:tripped"  # opened since the last success: one failure re-opens
TRIAL_KEY = "md:v1:breaker:trial"  # taken by the one caller making the trial call
FAILURES_MEMORY_SECONDS = 3600  # failures further apart than this do not add up
TRIPPED_MEMORY_SECONDS = 86400


class CircuitOpen(MarketDataUnavailable):
    """The provider failed repeatedly; no call is made until ``retry_at`` (UTC)."""

    def __init__(self, retry_at: datetime) -> None:
        self.retry_at = retry_at
        super().__init__(
            "The market-data provider failed several times in a row; no call is made until "
            f"{retry_at:%H:%M:%S} UTC."
        )


def _config():
    return settings.PAPERTRADE.breaker


def before_call() -> None:
    """Raise :class:`CircuitOpen` if no call may be made now (open, or another caller holds
    the trial call)."""
    now = timezone.now()
    state = cache.get_many([OPEN_KEY, TRIPPED_KEY])
    until = state.get(OPEN_KEY)
    if until is not None and until > now:
        raise CircuitOpen(until)
    # Half-open: one caller makes the trial call, the others wait for its verdict. (A trial
    # the quota then refuses holds the slot until it expires: recovery waits one more period.)
    if state.get(TRIPPED_KEY) and not cache.add(TRIAL_KEY, 1, _config().open_seconds):
        raise CircuitOpen(now + timedelta(seconds=_config().open_seconds))


def record_failure() -> None:
    """A call failed (transient or garbled answer): count it, open the circuit at the limit."""
    config = _config()
    if cache.get(TRIPPED_KEY):
        _open(config, "the trial call failed")
        return
    cache.add(FAILURES_KEY, 0, FAILURES_MEMORY_SECONDS)
    try:
        failures = cache.incr(FAILURES_KEY) or 0  # None when the cache is down
    except ValueError:  # expired between add and incr
        failures = 1
    if failures >= config.failures_to_open:
        _open(config, f"{failures} failed calls in a row")


def record_success() -> None:
    """The provider answered: close the circuit and forget the failures."""
    cache.delete_many([FAILURES_KEY, OPEN_KEY, TRIPPED_KEY, TRIAL_KEY])


def _open(config, why: str) -> None:
    until = timezone.now() + timedelta(seconds=config.open_seconds)
    cache.set(OPEN_KEY, until, config.open_seconds)
    cache.set(TRIPPED_KEY, True, TRIPPED_MEMORY_SECONDS)
    cache.delete_many([FAILURES_KEY, TRIAL_KEY])
    logger.warning("market-data circuit open until %s UTC: %s", f"{until:%Y-%m-%d %H:%M:%S}", why)
