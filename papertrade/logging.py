"""Logging helpers wired in by ``settings.LOGGING``.

:class:`OncePerInterval` keeps a failing dependency from flooding the log. With Redis down,
django-redis logs every ignored cache error (``DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS``), several
per request; the filter on its logger lets the first one through, drops the rest for
``[cache] error_log_interval_seconds``, and then lets the next one through saying how many were
dropped. The count lives in process memory on purpose (the shared store is what is down), so
each process logs once per interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class OncePerInterval(logging.Filter):
    """Let one record through per ``seconds``; count the ones dropped and say so in the next."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.seconds = float(seconds)
        self.clock = clock
        self._lock = threading.Lock()
        self._quiet_until: float | None = None
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            now = self.clock()
            if self._quiet_until is not None and now < self._quiet_until:
                self._dropped += 1
                return False
            dropped, self._dropped = self._dropped, 0
            self._quiet_until = now + self.seconds
        if dropped:
            # Appended to the format string, so it must carry no "%" of its own.
            record.msg = (
                f"{record.msg} ({dropped} more like it in the last {self.seconds:g} s not logged)"
            )
        return True


class QuietDatabaseErrors(logging.Filter):
    """Drop Django's "Internal Server Error" record (and its traceback) when the error is the
    database not answering: ``papertrade.middleware`` answers those requests with the 503 page
    and logs one WARNING line each, plus one ERROR per outage."""

    def filter(self, record: logging.LogRecord) -> bool:
        from django.db import InterfaceError, OperationalError

        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, OperationalError | InterfaceError)
