"""Symbols known without asking the provider: a bundled list of common US listings
(``data/symbols.csv``, ticker and company name) plus every ticker with stored prices.

Autocomplete answers from here first, so that typing costs no quota. A query looks only at its
matches: the listing is indexed once (its tickers, and every word of its names lowercased, both
sorted), and the stored tickers are read by an index range scan, so a search over a 10,000-row
listing and a year of 1,000 tickers' bars takes about a millisecond (bench/thousand_tickers.py).
"""

from __future__ import annotations

import csv
import re
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class _Index:
    """A listing sorted for prefix lookups: a query bisects to its matches instead of lowering
    and splitting every name."""

    names: dict[str, str]  # the listing it was built from (rebuilt when that is another one)
    tickers: list[str]  # sorted
    words: list[str]  # every word of every name, lowercased, sorted
    owners: list[str]  # the ticker of each word, in the same order

    @classmethod
    def of(cls, names: dict[str, str]) -> _Index:
        pairs = sorted({(word, t) for t, name in names.items() for word in name.lower().split()})
        return cls(
            names=names,
            tickers=sorted(names),
            words=[word for word, _ in pairs],
            owners=[t for _, t in pairs],
        )


_index: _Index | None = None


def _listing_index() -> _Index:
    """The index of ``bundled_symbols()``, built on first use (and again if the listing is
    another object: a test or the bench may put one in its place)."""
    global _index
    names = bundled_symbols()
    index = _index
    if index is None or index.names is not names:
        index = _index = _Index.of(names)
    return index


def _starting_with(values: Sequence[str], prefix: str) -> Iterator[int]:
    """The positions of the ``values`` (sorted) that start with ``prefix``: they are adjacent."""
    i = bisect_left(values, prefix)
    while i < len(values) and values[i].startswith(prefix):
        yield i
        i += 1


def _rank(ticker: str, name: str, upper: str, lower: str) -> int | None:
    """0: the ticker itself; 1: a ticker starting with the query; 2: a name with a word
    starting with it; None: no match."""
    if ticker == upper:
        return 0
    if ticker.startswith(upper):
        return 1
    if any(word.startswith(lower) for word in name.lower().split()):
        return 2
    return None


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
    index = _listing_index()
    names = index.names
    ranks: dict[str, int] = {}
    for i in _starting_with(index.tickers, upper):
        ticker = index.tickers[i]
        ranks[ticker] = 0 if ticker == upper else 1
    for i in _starting_with(index.words, lower):
        ranks.setdefault(index.owners[i], 2)
    extra: dict[str, str] = {}  # stored tickers the listing does not name: named by themselves
    for ticker in _stored_starting_with(upper, limit):
        if ticker not in names and (r := _rank(ticker, ticker, upper, lower)) is not None:
            extra[ticker] = ticker
            ranks[ticker] = r

    ranked = sorted((r, t, names.get(t) or extra[t]) for t, r in ranks.items())
    candidates = ranked[: limit * 3] if priced_first else ranked[:limit]
    priced = _with_prices([t for _, t, _ in candidates])
    if priced_first:
        candidates.sort(key=lambda item: (item[1] not in priced, item[0], item[1]))
    return [SymbolMatch(ticker=t, name=n, has_prices=t in priced) for _, t, n in candidates[:limit]]


_HEAD = re.compile(r"[0-9A-Z]*")  # a query's leading digits and capitals
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # in the order of the collations we meet


def _above_prefix(prefix: str) -> str | None:
    """The least string of digits and capitals above every string that starts with ``prefix``
    (itself digits and capitals): "AP" → "AQ", "AZ" → "B", "A9" → "AA"; None for "ZZ"."""
    head = prefix.rstrip("Z")
    if not head:
        return None
    return head[:-1] + _ALPHABET[_ALPHABET.index(head[-1]) + 1]


def _stored_starting_with(upper: str, limit: int) -> list[str]:
    """Up to ``limit`` stored tickers starting with ``upper``, in one query.

    A ``LIKE 'AP%'`` cannot use the (ticker, interval, timestamp) index under the database's
    collation (PostgreSQL then reads every bar: 30 ms for a year of 1,000 tickers), so the
    query's leading digits and capitals also bound it by a range, which it can: every string
    starting with "AP" (or "BRK.B": "BRK") sorts from "AP" to before "AQ", in the byte order
    and in the linguistic collations alike (digits before letters, neither ignored). A query
    that starts otherwise keeps the plain ``LIKE``."""
    stored = PriceHistory.objects.filter(ticker__startswith=upper)
    if head := _HEAD.match(upper).group():
        stored = stored.filter(ticker__gte=head)
        if (bound := _above_prefix(head)) is not None:
            stored = stored.filter(ticker__lt=bound)
    return list(stored.values_list("ticker", flat=True).distinct()[:limit])


def _with_prices(tickers: list[str]) -> set[str]:
    """Which of ``tickers`` have a stored bar: one query, an index probe per ticker."""
    if not tickers:
        return set()
    found = PriceHistory.objects.filter(ticker__in=tickers).values_list("ticker", flat=True)
    return set(found.distinct())
