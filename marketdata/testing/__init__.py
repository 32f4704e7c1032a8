"""Test doubles that tests and bench scripts share (so they live outside ``tests/``)."""

from marketdata.testing.fake_alpha_vantage import (
    BURST_LIMIT_BODY,
    DAILY_LIMIT_BODY,
    DAILY_LIMIT_ECHOING_KEY_BODY,
    MINUTE_LIMIT_BODY,
    FakeAlphaVantage,
)

__all__ = [
    "BURST_LIMIT_BODY",
    "DAILY_LIMIT_BODY",
    "DAILY_LIMIT_ECHOING_KEY_BODY",
    "MINUTE_LIMIT_BODY",
    "FakeAlphaVantage",
]
