"""The beat schedule, declared here and synced by name into django-celery-beat (STYLE rule 13).

``config.toml`` ``[refresh]`` (``cron``, ``timezone``) says when the daily refresh runs. It is
synced into the ``PeriodicTask`` named :data:`REFRESH_SCHEDULE_NAME` after every ``migrate``
(``MarketdataConfig.ready`` connects ``post_migrate``) and by ``manage.py sync_schedule``, with
``update_or_create`` keyed on that name: never deleted and recreated, so its run history and
the admin's edits survive.

The admin may change the task (its crontab, enabled, …) in *Periodic tasks*. A re-sync leaves
those edits alone for as long as the config's schedule is the one last synced: the task's
description ends with a fingerprint of the config (task, cron, time zone), and only a changed
fingerprint (someone edited ``config.toml``) overwrites the schedule. ``enabled`` is never
touched after the task is created.
"""

from __future__ import annotations

import hashlib
import re
import zoneinfo

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import DEFAULT_DB_ALIAS
from django_celery_beat.models import CrontabSchedule, PeriodicTask

REFRESH_SCHEDULE_NAME = "Refresh prices after the US close"
REFRESH_TASK = "marketdata.refresh_prices"
FINGERPRINT = re.compile(r"config-fingerprint: ([0-9a-f]{16})\s*$")


def _fingerprint(cron: str, tz: str) -> str:
    return hashlib.sha256(f"{REFRESH_TASK}|{cron}|{tz}".encode()).hexdigest()[:16]


def sync_schedule(*, force: bool = False, using: str = DEFAULT_DB_ALIAS) -> str:
    """Write the refresh schedule from config into django-celery-beat.

    Returns "created", "updated" (the config changed, or ``force``) or "unchanged" (the config
    is the one last synced: admin edits are kept). Raises ImproperlyConfigured naming the
    config file when its cron is not a valid crontab.
    """
    config = settings.PAPERTRADE
    cron, tz = config.refresh.cron, config.refresh.timezone
    fingerprint = _fingerprint(cron, tz)
    existing = PeriodicTask.objects.using(using).filter(name=REFRESH_SCHEDULE_NAME).first()
    if existing is not None and not force:
        match = FINGERPRINT.search(existing.description or "")
        if match and match.group(1) == fingerprint:
            return "unchanged"

    crontab = _crontab(cron, tz, config_path=config.path, using=using)
    description = (
        "Refreshes every held ticker and the watchlist (marketdata.refresh.refresh_prices). "
        f'Synced from config.toml [refresh]: cron "{cron}", {tz}. Edits made here are kept '
        "until config.toml's [refresh] cron or timezone changes (keep the last line).\n"
        f"config-fingerprint: {fingerprint}"
    )
    _, created = PeriodicTask.objects.using(using).update_or_create(
        name=REFRESH_SCHEDULE_NAME,
        defaults={
            "task": REFRESH_TASK,
            "crontab": crontab,
            "interval": None,
            "solar": None,
            "clocked": None,
            "one_off": False,
            "description": description,
        },
    )
    return "created" if created else "updated"


def _crontab(cron: str, tz: str, *, config_path: str, using: str) -> CrontabSchedule:
    minute, hour, day_of_month, month_of_year, day_of_week = cron.split()
    fields = {
        "minute": minute,
        "hour": hour,
        "day_of_month": day_of_month,
        "month_of_year": month_of_year,
        "day_of_week": day_of_week,
        "timezone": zoneinfo.ZoneInfo(tz),
    }
    found = CrontabSchedule.objects.using(using).filter(**fields).order_by("pk").first()
    if found is not None:
        return found
    crontab = CrontabSchedule(**fields)
    try:
        crontab.full_clean()
    except ValidationError as exc:
        problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        raise ImproperlyConfigured(
            f"{config_path}: refresh.cron {cron!r} is not a valid crontab ({problems})"
        ) from None
    crontab.save(using=using)
    return crontab
