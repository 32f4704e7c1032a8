"""Symbols known without asking the provider: a bundled list of common US listings
(``data/symbols.csv``, ticker and company name) plus every ticker with stored prices.

Autocomplete answers from here first, so that typing costs no quota.
"""

from __future__ import annotations

import csv
from functools import cache

from django.conf import settings

from marketdata.models import PriceHistory
from marketdata.port import SymbolMatch, clean_query

LIMIT = 10


@cache
def bundled_symbols() -> dict[str, str]:
    path = settings.BASE_DIR / "data" / "symbols.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["symbol"]: row["name"] for row in csv.DictReader(fh)}


def search_local(query: str, limit: int = LIMIT) -> list[SymbolMatch]:
    """Tickers and company names matching ``query``: exact ticker first, then ticker prefixes,
    then names with a word starting with the query."""
    text = clean_query(query)
    if not text:
        return []
    upper, lower = text.upper(), text.lower()
    names = dict(bundled_symbols())
    stored = PriceHistory.objects.filter(ticker__startswith=upper).values_list("ticker", flat=True)
    for ticker in stored.distinct()[:limit]:
        names.setdefault(ticker, ticker)

    def rank(item: tuple[str, str]) -> tuple[int, str] | None:
        ticker, name = item
        if ticker == upper:
            return (0, ticker)
        if ticker.startswith(upper):
            return (1, ticker)
        if any(word.startswith(lower) for word in name.lower().split()):
            return (2, ticker)
        return None

    ranked = sorted((r, t, n) for t, n in names.items() if (r := rank((t, n))) is not None)
    return [SymbolMatch(ticker=t, name=n) for _, t, n in ranked[:limit]]
