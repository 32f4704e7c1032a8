import re
from datetime import date

import pytest

from marketdata.tests.factories import store_bars

pytestmark = pytest.mark.django_db


def test_suggestions_come_as_datalist_options_marked_when_no_price_is_stored(auth_client):
    body = auth_client.get("/symbols/suggest/", {"q": "app"}).content.decode()
    assert '<option value="AAPL">AAPL — Apple Inc. · no stored prices</option>' in body


def test_offline_the_tickers_with_prices_come_first_and_unmarked(auth_client, db):
    store_bars("MSFT", [(date(2025, 12, 12), "478.5300")])
    body = auth_client.get("/symbols/suggest/", {"q": "m"}).content.decode()
    options = re.findall(r'<option value="([^"]+)">([^<]*)</option>', body)
    assert options[0] == ("MSFT", "MSFT — Microsoft Corporation")
    assert len(options) > 1 and all(
        label.endswith("· no stored prices") for _, label in options[1:]
    )


def test_the_search_page_says_which_matches_have_prices(auth_client, db):
    store_bars("BRK.B", [(date(2025, 12, 12), "499.5200")])
    body = auth_client.get("/stocks/", {"q": "b"}).content.decode()
    assert re.search(r'BRK\.B</a> — [^<]+ <span class="badge priced">prices stored</span>', body)
    # BAC: a listed company, nothing stored, and offline nothing to fetch it with.
    assert re.search(
        r"BAC</a> — [^<]+ <span class=\"badge missing\">no stored prices \(needs an API key\)", body
    )


def test_the_trade_form_field_name_works_too(auth_client):
    body = auth_client.get("/symbols/suggest/", {"ticker": "micro"}).content.decode()
    assert 'value="MSFT"' in body


def test_hostile_queries_get_no_suggestions_and_no_error(auth_client):
    for query in ("<script>", "' OR 1=1 --", "\x00\x01", "x" * 500, "ÄPPLE"):
        response = auth_client.get("/symbols/suggest/", {"q": query})
        assert response.status_code == 200
        assert "<script>" not in response.content.decode()


def test_suggestions_need_a_login(client):
    assert client.get("/symbols/suggest/", {"q": "app"}).status_code == 302


def test_the_header_search_finds_a_company_by_name(auth_client, aapl):
    response = auth_client.get("/stocks/", {"q": "apple"})
    assert response["Location"] == "/stocks/AAPL/"


def test_the_header_search_lists_several_matches(auth_client):
    response = auth_client.get("/stocks/", {"q": "alphabet"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "GOOGL" in body and "GOOG</a>" in body


def test_the_header_search_says_when_nothing_matches(auth_client):
    response = auth_client.get("/stocks/", {"q": "no such company!"})
    assert response.status_code == 404
    assert "No stock matches" in response.content.decode()


def test_the_upstream_is_asked_only_when_nothing_local_matches(auth_client, live, fake_av):
    auth_client.get("/symbols/suggest/", {"q": "apple"})
    assert fake_av.count() == 0
    auth_client.get("/symbols/suggest/", {"q": "zzzz unheard"})
    auth_client.get("/symbols/suggest/", {"q": "zzzz unheard"})
    assert fake_av.count("SYMBOL_SEARCH") == 1
