"""Failed log-ins, counted where the throttle needs them (``accounts/throttle.py``)."""

from __future__ import annotations

from django.db import models


class LoginThrottle(models.Model):
    """Failed log-ins for one key of one scope: an address, an account, or an account from one
    address. A row exists only while its failures matter; a success or the end of its window
    removes or restarts it."""

    class Scope(models.TextChoices):
        ADDRESS = "address", "address, any account"
        ACCOUNT = "account", "account, any address"
        ACCOUNT_ADDRESS = "account@address", "account from one address"

    scope = models.CharField(max_length=16, choices=Scope.choices)
    key = models.CharField(max_length=255)
    failures = models.PositiveIntegerField(default=0)
    first_failure = models.DateTimeField()
    last_failure = models.DateTimeField()
    blocked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="login_throttle_scope_key"),
        ]
        indexes = [models.Index(fields=["last_failure"], name="login_throttle_last")]

    def __str__(self) -> str:
        return f"{self.get_scope_display()} {self.key}: {self.failures} failed"
