"""When the web request being served began: the request budget
(``market_data.request_budget_seconds``) is counted from there, so the provider never holds a
request past it, whatever the request did before it asked for a price.

``papertrade.middleware.DatabaseUnavailableMiddleware`` (at the top of the stack) marks each
request's start; outside a request (a task, a command) a wait counts from when it begins.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_started: ContextVar[float | None] = ContextVar("market_data_request_started", default=None)


@contextmanager
def request_started() -> Iterator[None]:
    """Mark the start of a web request for the code it runs."""
    token = _started.set(time.monotonic())
    try:
        yield
    finally:
        _started.reset(token)


def wait_started() -> float:
    """Where a wait for a price counts from: the request's start, else now."""
    started = _started.get()
    return time.monotonic() if started is None else started
