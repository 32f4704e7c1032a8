"""The upstream part against a local fake Alpha Vantage: every HTTP attempt, retries included,
is a take of the shared quota; the breaker counts failures as they happen; and under
concurrent load in outage and slow modes the fake never sees more than the configured limits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from marketdata import breaker
from marketdata.port import (
    MarketDataError,
    MarketDataUnavailable,
    ProviderMisconfigured,
    RateLimited,
)
from marketdata.quota import Priority, get_quota
from marketdata.testing.fake_alpha_vantage import BURST_LIMIT_BODY, MISSING_KEY_BODY
from marketdata.wiring import get_upstream

DAILY = "TIME_SERIES_DAILY"

pytestmark = pytest.mark.django_db(transaction=True)


def configure(settings, *, timeout: float | None = None, **quota) -> None:
    papertrade = settings.PAPERTRADE
    if quota:
        papertrade = dataclasses.replace(
            papertrade, quota=dataclasses.replace(papertrade.quota, **quota)
        )
    if timeout is not None:
        md = dataclasses.replace(papertrade.market_data, request_timeout_seconds=timeout)
        papertrade = dataclasses.replace(papertrade, market_data=md)
    settings.PAPERTRADE = papertrade


def test_a_retry_is_a_second_quota_take(live, fake_av):
    fake_av.outage(1)  # one 503, then the real answer

    fetched = get_upstream().fetch("RETRYCO", priority=Priority.HELD)

    assert fetched.inserted == 100
    assert fake_av.count(DAILY, "RETRYCO") == 2
    status = get_quota().status()
    assert status.used_day == 2
    assert status.used_day_by_priority[Priority.HELD] == 2


def test_a_retry_waits_for_the_spacing(live, fake_av, settings):
    configure(settings, min_seconds_between_calls=0.4)
    fake_av.outage(1)

    get_upstream().fetch("SPACECO", priority=Priority.HELD)

    first, second = fake_av.times
    assert second - first >= 0.35  # the spacing, less the acquire-to-arrival jitter


def test_a_retry_the_quota_refuses_is_not_made(live, fake_av, settings):
    configure(settings, per_minute=1)
    fake_av.outage()
    # The quota counts calls per clock minute: started in a minute's last seconds, the retry
    # would fall in the next minute and be allowed. Start early in a minute (waits ≤ 15 s).
    into_minute = time.time() % 60
    if into_minute > 45:
        time.sleep(60 - into_minute + 0.1)

    with pytest.raises(MarketDataUnavailable, match="not retried") as caught:
        get_upstream().fetch("ONCECO", priority=Priority.HELD)

    assert "HTTP 503" in str(caught.value)
    assert fake_av.count() == 1
    assert get_quota().status().used_minute == 1


def test_the_breaker_counts_every_failed_attempt_as_it_happens(live, fake_av, settings):
    settings.PAPERTRADE = dataclasses.replace(
        settings.PAPERTRADE,
        breaker=dataclasses.replace(settings.PAPERTRADE.breaker, failures_to_open=2),
    )
    fake_av.outage()
    upstream = get_upstream()

    with pytest.raises(MarketDataUnavailable):
        upstream.fetch("FAILCO", priority=Priority.HELD)  # one fetch, two failed attempts

    assert fake_av.count() == 2
    with pytest.raises(breaker.CircuitOpen):
        upstream.fetch("OTHERCO", priority=Priority.HELD)
    assert fake_av.count() == 2


@pytest.mark.parametrize(
    ("body", "error"),
    [(BURST_LIMIT_BODY, RateLimited), (MISSING_KEY_BODY, ProviderMisconfigured)],
)
def test_rate_limits_and_misconfiguration_are_not_retried(live, fake_av, body, error):
    fake_av.route(DAILY, "*", body)

    with pytest.raises(error):
        get_upstream().fetch("ONEONLY", priority=Priority.HELD)

    assert fake_av.count() == 1


@pytest.mark.postgres  # threads against one SQLite in-memory test database lock each other out
@pytest.mark.parametrize("mode", ["outage", "slow"])
def test_under_load_the_provider_never_sees_more_than_the_limits(live, fake_av, settings, mode):
    """Eight threads fetch different tickers for a few seconds against a failing provider
    (503s, or answers that come after the timeout): every attempt, retries included, goes
    through the quota, so the fake's own counts stay within the configured limits."""
    spacing, per_minute, per_day = 0.25, 6, 9
    configure(
        settings,
        timeout=0.3,
        min_seconds_between_calls=spacing,
        per_minute=per_minute,
        per_day=per_day,
        interactive_reserve=0,
    )
    settings.PAPERTRADE = dataclasses.replace(
        settings.PAPERTRADE,
        breaker=dataclasses.replace(settings.PAPERTRADE.breaker, failures_to_open=1000),
    )
    fake_av.limits(min_interval=spacing, per_minute=per_minute, per_day=per_day, tolerance=0.05)
    if mode == "outage":
        fake_av.outage()
    else:
        fake_av.slow(0.6)
    upstream = get_upstream()
    deadline = time.monotonic() + 4.0
    attempts = [0]
    lock = threading.Lock()

    def hammer(worker: int) -> None:
        n = 0
        while time.monotonic() < deadline and n < 50:
            n += 1
            with lock:
                attempts[0] += 1
            with contextlib.suppress(MarketDataError):
                upstream.fetch(f"T{worker}X{n}", priority=Priority.HELD, wait=spacing + 0.1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(hammer, range(8)))

    assert attempts[0] > per_day  # the load asked for more than the quota allows
    assert 0 < fake_av.count() <= per_day
    assert fake_av.violation_log == []
