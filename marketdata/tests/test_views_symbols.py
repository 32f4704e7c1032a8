import pytest

pytestmark = pytest.mark.django_db


def test_suggestions_come_as_datalist_options(auth_client):
    body = auth_client.get("/symbols/suggest/", {"q": "app"}).content.decode()
    assert '<option value="AAPL">AAPL — Apple Inc.</option>' in body


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
