"""The login lockout's view of a login attempt (django-axes, configured in settings), and the
per-address throttle on failed log-ins across usernames.

- axes locks a username *from one address* after a few wrong passwords: the same user from
  elsewhere logs in, another user from the same address too.
- :func:`throttled` counts failed log-ins per client address across usernames (credential
  spraying) in the cache and refuses log-ins from an address past ``LOGIN_FAILURES_PER_ADDRESS``
  in ``LOGIN_FAILURE_WINDOW``.
- :func:`client_address` is the address both key on: ``REMOTE_ADDR``, unless it is one of the
  configured ``TRUSTED_PROXIES``, in which case the nearest address in ``X-Forwarded-For`` that
  is not one of them. ``X-Forwarded-For`` is never trusted by default: anyone can send it.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest

USERNAME_COLUMN = 255  # axes.models.AccessAttempt.username


def lockout_username(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """The username an attempt counts against: as typed, cut to the column that stores it.

    Django's login form does not bound the username's length, so a 10,000-character one
    reaches the lockout, whose insert PostgreSQL would refuse (a 500). No account has such a
    name, so cutting it changes nothing but the error."""
    if credentials:
        username = credentials.get("username")
    else:
        username = getattr(request, "POST", {}).get("username")
    return username[:USERNAME_COLUMN] if isinstance(username, str) else username


def client_address(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = settings.TRUSTED_PROXIES
    if remote not in trusted:
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        if hop not in trusted:
            return hop
    return remote


def _failures_key(address: str) -> str:
    return f"login-failures:v1:{address}"


@receiver(user_login_failed, dispatch_uid="papertrade.lockout.count_failure")
def count_failure(sender, credentials=None, request=None, **kwargs) -> None:
    """One more failed log-in from the request's address (any username)."""
    if request is None:
        return
    key = _failures_key(client_address(request))
    window = int(settings.LOGIN_FAILURE_WINDOW.total_seconds())
    if not cache.add(key, 1, window):
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls
            cache.add(key, 1, window)


def throttled(request: HttpRequest) -> bool:
    """Too many failed log-ins from this address lately, whatever the usernames."""
    failures = cache.get(_failures_key(client_address(request))) or 0
    return failures >= settings.LOGIN_FAILURES_PER_ADDRESS
