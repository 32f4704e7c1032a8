"""Hostile input at the market-data doors (PRODUCT §8): whatever is typed into the symbol
suggest box, or comes back from the provider, answers without a 500, writes nothing, and is
escaped on the way out. The strategies here are shared with portfolios' hostile-input tests.

Example counts come from the hypothesis profile (conftest.py): HYPOTHESIS_PROFILE=thorough
for a deep run.
"""

import operator
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketdata.models import PriceHistory
from marketdata.port import (
    MAX_QUERY_LENGTH,
    TICKER_RE,
    InvalidTicker,
    clean_query,
    normalize_ticker,
)

pytestmark = pytest.mark.django_db

# --- the hostile repertoire -------------------------------------------------------------------
CURATED_TEXT = [
    "",
    " ",
    "\x00",
    "AAPL\x00",
    "\x00AAPL",
    "\t\r\n",
    "\u202eLPAA",
    "\u200bAAPL",
    "\ufeffAAPL",
    "\u00a0AAPL\u00a0",
    "ＡＡＰＬ",
    "aapl",
    " aapl ",
    "ıbm",
    "ß",
    "ǅ",
    "ﬀ",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "'; DROP TABLE portfolios_portfolio; --",
    "' OR '1'='1",
    "1; SELECT pg_sleep(5)",
    "%' OR 1=1 --",
    "{{ 7|add:1 }}",
    "{% debug %}",
    "${jndi:ldap://x/a}",
    "../../etc/passwd",
    "%2e%2e%2f",
    "%00",
    "%",
    "\\",
    "/",
    "?",
    "#",
    "&",
    "=",
    ".",
    "..",
    "-",
    "A-",
    "BRK.B",
    "A" * 11,
    "A" * 10_000,
    "😀" * 50,
    "𝐀𝐀𝐏𝐋",
    "١٢٣",
    "NaN",
    "null",
    "None",
    "[]",
]

#: Text of every kind: curated attacks, arbitrary unicode (control characters included), near
#: tickers, and very long strings.
hostile_text = st.one_of(
    st.sampled_from(CURATED_TEXT),
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="ascii"), max_size=16),
    st.from_regex(r"[A-Za-z0-9.\- ]{0,14}", fullmatch=True),
    st.builds(operator.mul, st.text(min_size=1, max_size=4), st.integers(2_000, 5_000)),
)

CURATED_NUMBERS = [
    "-1",
    "-0.01",
    "0",
    "0.00",
    "-0",
    "+5",
    "5e2",
    "5E2",
    "1e-2",
    "1E+3",
    "NaN",
    "nan",
    "-NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "∞",
    "1.000,50",
    "1,000.50",
    "1 000",
    "1_000",
    "1'000",
    "١٢٣",
    "۱۲۳",
    "１２３",
    "１２３．４５",
    "²",
    "½",
    "𝟓",
    "٫5",
    "0x10",
    "0b1",
    ".",
    "..",
    "1.2.3",
    "10.001",
    "0.00001",
    "0.00005",
    "9" * 33,
    "1" + "0" * 40,
    "1e999999",
    "5\x00",
    "\x005",
    "5 5",
    "$5",
    "5%",
    "(5)",
    "5-",
    "--5",
    "=5",
    "2000000000",
    "1000000000.01",
    "<script>",
    "' OR 1=1",
    "",
    " ",
]

#: Amounts and quantities as a browser could send them: mostly not plain positive decimals.
hostile_number = st.one_of(
    st.sampled_from(CURATED_NUMBERS),
    st.text(alphabet="0123456789.,-+eE _'١٢٣۱۲٫０１２３．， \t\x00", max_size=40),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.floats().map(repr),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    hostile_text,
)

#: Fixture-using property tests: the fixtures' objects are shared by the examples on purpose
#: (each example checks that it changed nothing).
fixtures_ok = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def _stored_bars():
    return PriceHistory.objects.count()


# --- tickers and queries, as functions ----------------------------------------------------------
@given(raw=hostile_text)
def test_normalize_ticker_returns_a_well_formed_ticker_or_says_why(raw):
    try:
        ticker = normalize_ticker(raw)
    except InvalidTicker as exc:
        assert str(exc)
        return
    assert TICKER_RE.fullmatch(ticker)
    assert ticker == raw.strip().upper() and ticker.isascii()


@given(raw=hostile_text)
def test_a_cleaned_query_is_short_and_printable(raw):
    text = clean_query(raw)
    assert len(text) <= MAX_QUERY_LENGTH and text.isprintable()
    assert "\x00" not in text


# --- the suggest box --------------------------------------------------------------------------
def _assert_escaped(body: str) -> None:
    assert "<script" not in body.lower()
    assert re.search(r"<(?!/?option\b)", body) is None  # only our <option> tags


@fixtures_ok
@given(q=hostile_text, param=st.sampled_from(["q", "ticker"]))
def test_the_suggest_box_answers_any_query_without_error(auth_client, aapl, q, param):
    bars = _stored_bars()
    response = auth_client.get("/symbols/suggest/", {param: q}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    _assert_escaped(response.content.decode())
    assert _stored_bars() == bars


@fixtures_ok
@given(q=hostile_text)
def test_the_suggest_box_answers_any_query_when_live(auth_client, live, fake_av, q):
    """Live, a query nothing local matches goes to the provider (through the quota): still no
    error, whatever the query, and never a price written."""
    bars = _stored_bars()
    response = auth_client.get("/symbols/suggest/", {"q": q})
    assert response.status_code == 200
    _assert_escaped(response.content.decode())
    assert _stored_bars() == bars


@fixtures_ok
@given(qs=st.lists(st.tuples(hostile_text, hostile_text), max_size=4))
def test_any_query_string_at_all(auth_client, qs):
    response = auth_client.get("/symbols/suggest/", dict(qs))
    assert response.status_code == 200


def test_a_hostile_provider_answer_is_escaped_in_the_suggestions(auth_client, live, fake_av):
    fake_av.route(
        "SYMBOL_SEARCH",
        "*",
        {
            "bestMatches": [
                {
                    "1. symbol": "XSS",
                    "2. name": "<script>alert(1)</script> & Co",
                    "4. region": "United States",
                    "8. currency": "USD",
                    "9. matchScore": "1.0000",
                },
                {
                    "1. symbol": '"><b>',
                    "2. name": "Bad symbol",
                    "4. region": "United States",
                    "8. currency": "USD",
                    "9. matchScore": "0.5000",
                },
            ]
        },
    )
    body = auth_client.get("/symbols/suggest/", {"q": "zzqx"}).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in body
    assert "<script>" not in body
    assert "<b>" not in body  # a malformed symbol is dropped, not rendered
