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
