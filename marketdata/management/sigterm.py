"""SIGTERM as Ctrl-C, for the commands that fetch or load prices: a ``kill`` (systemd stopping a
timer's run, ``docker stop``) stops them the clean way a Ctrl-C does."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised where the command happens to be, so what is being written rolls back and
    the loops that catch KeyboardInterrupt stop and report what they did not do."""


def _raise_interrupted(signum, frame):
    raise Interrupted


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Interrupted`; the earlier handler comes back after.
    Off the main thread (a test calling the command) signals cannot be handled: nothing
    changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
