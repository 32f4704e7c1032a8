"""The login lockout's view of a login attempt (django-axes, configured in settings)."""

from __future__ import annotations

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
