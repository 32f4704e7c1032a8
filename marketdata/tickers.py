"""What a ticker may look like: upper-case letters, digits, ``.`` and ``-``; 1 to 10 characters."""

import re

TICKER_MAX_LENGTH = 10
TICKER_RE = re.compile(r"[A-Z0-9][A-Z0-9.\-]{0,9}")


class InvalidTicker(ValueError):
    pass


def normalize_ticker(raw: object) -> str:
    """Return ``raw`` stripped and upper-cased, or raise InvalidTicker saying what is wrong."""
    if not isinstance(raw, str):
        raise InvalidTicker("Enter a ticker symbol.")
    # ASCII first: Unicode case mapping would turn "ıbm" into "IBM" and "ß" into "SS".
    if not raw.isascii():
        raise InvalidTicker(
            "A ticker may contain only letters, digits, '.' and '-', and starts with a letter "
            "or digit."
        )
    ticker = raw.strip().upper()
    if not ticker:
        raise InvalidTicker("Enter a ticker symbol.")
    if len(ticker) > TICKER_MAX_LENGTH:
        raise InvalidTicker(f"A ticker has at most {TICKER_MAX_LENGTH} characters.")
    if not TICKER_RE.fullmatch(ticker):
        raise InvalidTicker(
            "A ticker may contain only letters, digits, '.' and '-', and starts with a letter "
            "or digit."
        )
    return ticker
