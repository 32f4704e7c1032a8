"""Failed log-ins slow an attacker down without handing anyone a way to lock a person out.

Three counts, each kept in the database (``LoginThrottle``) so they hold while Redis is away:

- **An account from one address** (the typo rule): after ``LOGIN_PAUSE_AFTER`` wrong passwords
  in a row, log-ins as that account from that address pause for ``LOGIN_PAUSE_FIRST``, and each
  further wrong password doubles the pause, up to ``LOGIN_PAUSE_LONGEST``. A correct password
  wipes the count; a day without failures forgets it. Attempts during a pause are refused
  unchecked and do not count, so hammering does not lengthen it: to keep a person out from a
  shared address an attacker has to wait out each pause and then guess once more, a few guesses
  an hour. The same account from another address is unaffected.
- **An account from anywhere** (distributed guessing): past ``LOGIN_FAILURES_PER_ACCOUNT`` in
  ``LOGIN_ACCOUNT_WINDOW`` the account pauses until that window ends. The ceiling is high
  enough that one address's typos never reach it.
- **An address, any account** (credential spraying): past ``LOGIN_FAILURES_PER_ADDRESS`` in
  ``LOGIN_FAILURE_WINDOW`` the address pauses until that window ends.

:func:`client_address` is the address all of them key on: ``REMOTE_ADDR``, unless it is one of
the configured ``TRUSTED_PROXIES``, in which case the nearest address in ``X-Forwarded-For``
that is not one of them. ``X-Forwarded-For`` is never trusted by default: anyone can send it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import LoginThrottle

logger = logging.getLogger(__name__)

Scope = LoginThrottle.Scope
USERNAME_LENGTH = 150  # Django's username column: no account has a longer name
ADDRESS_LENGTH = 64
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Pause:
    """Log-ins for this request are paused: why (``scope``) and until when."""

    scope: str
    until: datetime
    failures: int

    @property
    def minutes(self) -> int:
        """The wait, rounded up to whole minutes (at least one)."""
        seconds = (self.until - timezone.now()).total_seconds()
        return max(1, math.ceil(seconds / 60))


def client_address(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = settings.TRUSTED_PROXIES
    if remote not in trusted:
        return remote[:ADDRESS_LENGTH]
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        if hop not in trusted:
            return hop[:ADDRESS_LENGTH]
    return remote[:ADDRESS_LENGTH]


def _keys(request: HttpRequest, username: object) -> dict[str, str]:
    address = client_address(request)
    keys = {Scope.ADDRESS: address}
    if isinstance(username, str) and username:
        name = username[:USERNAME_LENGTH].replace("\x00", "")  # PostgreSQL stores no NUL
        keys[Scope.ACCOUNT] = name
        keys[Scope.ACCOUNT_ADDRESS] = f"{address} {name}"  # an address has no space
    return keys


def paused(request: HttpRequest, username: object) -> Pause | None:
    """The longest pause that applies to a log-in as ``username`` from this request, if any
    (one query)."""
    where = Q()
    for scope, key in _keys(request, username).items():
        where |= Q(scope=scope, key=key)
    row = (
        LoginThrottle.objects.filter(where, blocked_until__gt=timezone.now())
        .order_by("-blocked_until")
        .values_list("scope", "blocked_until", "failures")
        .first()
    )
    return Pause(*row) if row else None


def _windowed(row: LoginThrottle, now: datetime, limit: int, window: timedelta) -> None:
    """A fixed window from the first failure: past ``limit`` failures, paused until it ends."""
    if now >= row.first_failure + window:
        row.failures, row.first_failure, row.blocked_until = 1, now, None
    if row.failures >= limit:
        row.blocked_until = row.first_failure + window


def _doubling(row: LoginThrottle, now: datetime) -> None:
    """From the ``LOGIN_PAUSE_AFTER``-th failure in a row: a pause that doubles each time."""
    extra = row.failures - settings.LOGIN_PAUSE_AFTER
    if extra >= 0:
        first = settings.LOGIN_PAUSE_FIRST.total_seconds()
        seconds = min(first * 2 ** min(extra, 32), settings.LOGIN_PAUSE_LONGEST.total_seconds())
        row.blocked_until = now + timedelta(seconds=seconds)


def _apply(row: LoginThrottle, now: datetime) -> None:
    if row.scope == Scope.ADDRESS:
        _windowed(row, now, settings.LOGIN_FAILURES_PER_ADDRESS, settings.LOGIN_FAILURE_WINDOW)
    elif row.scope == Scope.ACCOUNT:
        _windowed(row, now, settings.LOGIN_FAILURES_PER_ACCOUNT, settings.LOGIN_ACCOUNT_WINDOW)
    else:
        _doubling(row, now)


@receiver(user_login_failed, dispatch_uid="accounts.throttle.count_failure")
def count_failure(sender, credentials=None, request=None, **kwargs) -> None:
    """One more wrong password: counted for the address, the account, and the two together."""
    if request is None:
        return
    now = timezone.now()
    username = (credentials or {}).get("username")
    with transaction.atomic():
        for scope, key in _keys(request, username).items():
            row, created = LoginThrottle.objects.select_for_update().get_or_create(
                scope=scope,
                key=key,
                defaults={"failures": 1, "first_failure": now, "last_failure": now},
            )
            if not created:
                if now - row.last_failure > FORGET_AFTER:
                    row.failures, row.first_failure, row.blocked_until = 0, now, None
                row.failures += 1
            row.last_failure = now
            was_paused = row.blocked_until is not None and row.blocked_until > now
            _apply(row, now)
            row.save()
            if row.blocked_until and row.blocked_until > now and not was_paused:
                logger.warning(
                    "log-in paused for %s %r after %d failed log-ins, until %s",
                    Scope(scope).label,
                    key,
                    row.failures,
                    row.blocked_until.isoformat(timespec="seconds"),
                )
        # Rows nobody has failed on for a day are forgotten: a bounded table, one indexed delete.
        LoginThrottle.objects.filter(last_failure__lt=now - FORGET_AFTER).delete()


@receiver(user_logged_in, dispatch_uid="accounts.throttle.forget_typos")
def forget_typos(sender, request=None, user=None, **kwargs) -> None:
    """The right password wipes that account's typos from that address; the address's and the
    account's own counts stay (one valid account must not reset a sprayer's count)."""
    if request is None or user is None:
        return
    key = _keys(request, user.get_username())[Scope.ACCOUNT_ADDRESS]
    LoginThrottle.objects.filter(scope=Scope.ACCOUNT_ADDRESS, key=key).delete()
