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


def search_local(
    query: str, limit: int = LIMIT, *, priced_first: bool = False
) -> list[SymbolMatch]:
    """Tickers and company names matching ``query``: exact ticker first, then ticker prefixes,
    then names with a word starting with the query; each marked with whether prices of it are
    stored. ``priced_first`` (the offline demo) puts those with prices before the rest."""
    text = clean_query(query)
    if not text:
        return []
    upper, lower = text.upper(), text.lower()
    names = dict(bundled_symbols())
    stored = PriceHistory.objects.filter(ticker__startswith=upper).values_list("ticker", flat=True)
    for ticker in stored.distinct()[:limit]:
        names.setdefault(ticker, ticker)

    def rank(item: tuple[str, str]) -> int | None:
        ticker, name = item
        if ticker == upper:
            return 0
        if ticker.startswith(upper):
            return 1
        if any(word.startswith(lower) for word in name.lower().split()):
            return 2
        return None

    ranked = sorted((r, t, n) for t, n in names.items() if (r := rank((t, n))) is not None)
    candidates = ranked[: limit * 3] if priced_first else ranked[:limit]
    priced = _with_prices([t for _, t, _ in candidates])
    if priced_first:
        candidates.sort(key=lambda item: (item[1] not in priced, item[0], item[1]))
    return [SymbolMatch(ticker=t, name=n, has_prices=t in priced) for _, t, n in candidates[:limit]]


def _with_prices(tickers: list[str]) -> set[str]:
    """Which of ``tickers`` have a stored bar: one query, an index probe per ticker."""
    if not tickers:
        return set()
    found = PriceHistory.objects.filter(ticker__in=tickers).values_list("ticker", flat=True)
    return set(found.distinct())
