import pytest

pytestmark = pytest.mark.django_db


def test_a_visitor_is_sent_to_log_in_from_every_page_but_the_landing_page(client, portfolio):
    for url in (f"/portfolios/{portfolio.pk}/", "/stocks/AAPL/", "/stocks/?q=AAPL"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url


def test_login_signup_and_health_are_open_to_visitors(client):
    assert client.get("/accounts/login/").status_code == 200
    assert client.get("/accounts/signup/").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_signing_up_creates_the_account_and_logs_in(client, django_user_model):
    response = client.post(
        "/accounts/signup/",
        {"username": "carol", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert django_user_model.objects.filter(username="carol").exists()
    assert client.get("/").status_code == 200


def test_a_bad_signup_shows_the_error_and_creates_nobody(client, django_user_model):
    response = client.post(
        "/accounts/signup/",
        {"username": "dave", "password1": "a-long-pass-phrase", "password2": "different-phrase"},
    )
    assert response.status_code == 422
    assert "didn’t match" in response.content.decode()
    assert not django_user_model.objects.filter(username="dave").exists()


def test_logging_in_and_out(client, user, password):
    response = client.post("/accounts/login/", {"username": "alice", "password": password})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert "Your portfolios" not in client.get("/").content.decode()
    assert client.get("/portfolios/").status_code == 302  # to the login page


def test_an_anonymous_visitor_sees_what_the_app_is_and_the_way_in(client):
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Practise trading US stocks with virtual money" in body
    assert 'href="/accounts/signup/">Sign up</a>' in body
    assert 'href="/accounts/login/">Log in</a>' in body


def test_every_page_names_its_icon_and_the_icon_is_served(client):
    from django.contrib.staticfiles import finders

    body = client.get("/accounts/login/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in body
    assert finders.find("favicon.svg")
