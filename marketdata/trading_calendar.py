"""The NYSE trading calendar (from ``exchange_calendars``): which sessions there are, and
which close is due by a moment. The market's clock itself (``close_of``, ``day_start``,
``session_date``) is part of the contract, in ``marketdata.port``.

Named ``trading_calendar`` so as not to shadow the standard library's ``calendar``.
``exchange_calendars`` and pandas take most of a second to import, so they load on first use:
processes that never need the calendar (``import_prices --from-file``, ``migrate``) start
without them.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING

from marketdata.port import close_of, session_date

if TYPE_CHECKING:
    import exchange_calendars


_build_lock = threading.Lock()


def nyse() -> exchange_calendars.ExchangeCalendar:
    """The calendar, built once per process (about 0.5 s of CPU): under a lock, so that the
    concurrent first requests of a fresh worker wait for one build instead of each doing it."""
    with _build_lock:
        return _nyse()


@cache
def _nyse() -> exchange_calendars.ExchangeCalendar:
    import exchange_calendars

    # Wide enough for the bundled history (from 1999) and a year ahead.
    return exchange_calendars.get_calendar("XNYS", start="1990-01-02")


def latest_due_close(now: datetime, grace: timedelta) -> datetime:
    """The close of the latest session whose bar should be published by ``now``.

    A bar becomes due ``grace`` after its session closes: on Saturday the latest due close is
    Friday's, and it stays so until Monday's close plus grace.
    """
    import pandas as pd

    cal = nyse()
    moment = pd.Timestamp(now - grace)
    if moment <= cal.first_minute or moment > cal.last_minute:
        return close_of(session_date(now - grace))
    last_close = cal.previous_close(moment + pd.Timedelta(minutes=1))
    return close_of(session_date(last_close.to_pydatetime()))
