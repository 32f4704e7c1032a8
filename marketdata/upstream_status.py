"""The note every page reads when live prices are held back (quota spent, provider failing,
provider refusing our configuration), shared by every process through the cache."""

from __future__ import annotations

from datetime import datetime

from django.core.cache import cache
from django.utils import timezone

UPSTREAM_STATUS_KEY = "md:v2:upstream-status"
DEFAULT_SECONDS = 300  # how long a note without an end lasts
MAX_SECONDS = 86400


def set_upstream_status(*, kind: str, message: str, until: datetime | None) -> None:
    """Remember, for every process, that live prices are held back (and until when).

    ``kind`` is one of "quota", "rate_limited", "unavailable", "misconfigured".
    """
    ttl = DEFAULT_SECONDS
    if until is not None:
        ttl = max(1, min(int((until - timezone.now()).total_seconds()), MAX_SECONDS))
    cache.set(
        UPSTREAM_STATUS_KEY,
        {"kind": kind, "message": message, "until": until, "at": timezone.now()},
        ttl,
    )


def upstream_status() -> dict | None:
    """Why live prices are held back right now, or None."""
    return cache.get(UPSTREAM_STATUS_KEY)


# --- bulk quotes refused --------------------------------------------------------------------------
BULK_REFUSED_KEY = "md:v1:bulk-quotes-refused"
BULK_REFUSED_SECONDS = 86400  # asked again a day later: a key may be upgraded


def bulk_refused() -> str | None:
    """Why the key was refused REALTIME_BULK_QUOTES lately (then: one call a ticker), or None."""
    return cache.get(BULK_REFUSED_KEY)


def note_bulk_refused(message: str) -> bool:
    """Remember the refusal for a day; True the first time (the caller logs it once)."""
    return cache.add(BULK_REFUSED_KEY, message, BULK_REFUSED_SECONDS)


def bulk_applies() -> bool:
    """``premium`` and ``bulk_quotes`` are on, and the key was not refused the function lately."""
    from django.conf import settings

    md = settings.PAPERTRADE.market_data
    return md.premium and md.bulk_quotes and not bulk_refused()
