"""The one daily-bar type: what the adapter parses, the importer reads and storage writes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import NamedTuple


class DailyBar(NamedTuple):
    day: date  # the session date (New York)
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int | None
