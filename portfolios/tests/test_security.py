"""Security stories (PRODUCT §2.1, §8): a login in front of every page but login, signup, the
health check and static files; CSRF on every POST; Bob never sees or touches Alice's things;
production settings pass
``check --deploy`` and refuse to start on the fallback secret key."""

import os
import re
import secrets
import subprocess
import sys
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLResolver, get_resolver, resolve

from portfolios.models import Holding, Portfolio, Transaction
from portfolios.services import portfolio_buy, portfolio_create

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
# The only pages an anonymous visitor may see (plus static files, served before any view):
# "/" shows them what the app is and the way in, nothing of anybody's.
PUBLIC = {"login", "signup", "healthz", "dashboard"}
# What each URL parameter is filled with when every route is walked.
SAMPLES = {
    "pk": "{pk}",
    "order_id": "1",
    "ticker": "AAPL",
    "kind": "transactions",
    "object_id": "1",
    "content_type_id": "1",
    "id": "1",
    "uidb64": "MQ",
    "token": "set-password",
    "app_label": "auth",
    "url": "nowhere/",
}


def every_route():
    """(sample path, url name) for every pattern in the resolver, includes and admin too."""

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            else:
                yield prefix + str(p.pattern), p.name

    for route, name in walk(get_resolver().url_patterns):
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: SAMPLES[m[1]], route)
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: SAMPLES[m[1]], path)
        yield "/" + path.replace("^", "").replace("$", ""), name


def _snapshot():
    return (
        sorted(
            Portfolio.objects.values_list(
                "id", "owner_id", "name", "cash", "net_contributions", "realized_gain"
            )
        ),
        sorted(Holding.objects.values_list("portfolio_id", "ticker", "quantity", "cost_basis")),
        sorted(Transaction.objects.values_list("id", "portfolio_id", "kind", "cash_change")),
    )


@pytest.fixture
def alices(portfolio, aapl):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("5"))
    return portfolio


# --- login required -------------------------------------------------------------------------------
def test_every_page_but_login_signup_health_and_static_needs_a_login(client, alices):
    routes = [(path.format(pk=alices.pk), name) for path, name in every_route()]
    assert len(routes) > 30  # the walk reached the includes and the admin
    before = _snapshot()
    for path, name in routes:
        resolve(path)  # the sample really is one of our URLs
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            where = f"{method.upper()} {path} ({name})"
            assert response.status_code != 500, where
            if name in PUBLIC and not path.startswith("/admin/"):
                assert response.status_code in (200, 302, 405, 422, 503), where
                continue
            if path == ADMIN_LOGIN:  # the admin's own login page
                continue
            if response.status_code == 302:
                location = response["Location"]
                assert location.startswith((LOGIN, ADMIN_LOGIN)), where
            else:
                assert response.status_code in (404, 405), where
    assert _snapshot() == before
    assert client.get("/static/app.css").status_code == 200


def test_a_logged_in_non_staff_user_gets_no_admin_page(auth_client):
    response = auth_client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(ADMIN_LOGIN)
    assert auth_client.get("/admin/auth/user/").status_code == 302


# --- CSRF -----------------------------------------------------------------------------------------
@pytest.fixture
def csrf_client(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def post_endpoints(portfolio):
    pk = portfolio.pk
    return [
        ("/portfolios/", {"name": "Growth", "opening_deposit": "100"}),
        (f"/portfolios/{pk}/trade/", {"side": "BUY", "ticker": "AAPL", "quantity": "1"}),
        (f"/portfolios/{pk}/trade/", {"side": "SELL", "ticker": "AAPL", "quantity": "1"}),
        (f"/portfolios/{pk}/deposit/", {"deposit-amount": "100"}),
        (f"/portfolios/{pk}/withdraw/", {"withdraw-amount": "100"}),
        (f"/portfolios/{pk}/rename/", {"name": "Renamed"}),
        (f"/portfolios/{pk}/delete/", {"confirm": portfolio.name}),
    ]


def test_every_post_without_the_csrf_token_is_refused_and_changes_nothing(csrf_client, alices):
    before = _snapshot()
    for url, data in post_endpoints(alices):
        assert csrf_client.post(url, data).status_code == 403, url
        response = csrf_client.post(url, data, HTTP_HX_REQUEST="true")
        assert response.status_code == 403, url
        # A token from somewhere else is no token.
        forged = csrf_client.post(url, data, HTTP_X_CSRFTOKEN="x" * 64)
        assert forged.status_code == 403, url
    assert _snapshot() == before
    # Logging out is a POST too: without the token the session survives.
    assert csrf_client.post("/accounts/logout/").status_code == 403
    assert csrf_client.get("/").status_code == 200


def test_every_route_refuses_a_post_without_the_token(django_user_model, alices):
    """Whatever the route (ours, auth's, the admin's), a tokenless POST never reaches a view."""
    staff = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    before = _snapshot()
    for path, name in every_route():
        path = path.format(pk=alices.pk)
        assert client.post(path, {"confirm": alices.name}).status_code == 403, (path, name)
    assert _snapshot() == before
    anonymous = Client(enforce_csrf_checks=True)
    for path in (LOGIN, "/accounts/signup/", ADMIN_LOGIN):
        data = {"username": "alice", "password": "x", "password1": "x", "password2": "x"}
        assert anonymous.post(path, data).status_code == 403, path


def test_the_same_posts_with_the_token_go_through(csrf_client, alices):
    """The refusals above are CSRF's doing: with the page's token the forms work."""
    csrf_client.get(f"/portfolios/{alices.pk}/")
    token = csrf_client.cookies[settings.CSRF_COOKIE_NAME].value
    response = csrf_client.post(
        f"/portfolios/{alices.pk}/deposit/", {"deposit-amount": "100"}, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 302
    assert Portfolio.objects.get(pk=alices.pk).cash == alices.cash + 100


# --- isolation, beyond test_isolation.py ----------------------------------------------------------
def test_the_stock_page_offers_only_your_own_portfolios_to_buy_in(client, other_user, alices):
    bobs = portfolio_create(owner=other_user, name="Bob's hideout", opening_deposit=Decimal("5"))
    client.force_login(other_user)
    body = client.get("/stocks/AAPL/").content.decode()
    assert "Buy in Bob&#x27;s hideout" in body
    assert f"/portfolios/{bobs.pk}/" in body
    assert alices.name not in body
    assert f"/portfolios/{alices.pk}/" not in body


def test_htmx_fragments_and_query_variants_of_anothers_portfolio_are_404(
    client, other_user, alices
):
    client.force_login(other_user)
    pk = alices.pk
    fragments = [
        (f"/portfolios/{pk}/", {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "transactions"}),
        (f"/portfolios/{pk}/?kind=BUY&page=2", {}),
        (f"/portfolios/{pk}/live/", {"HTTP_HX_REQUEST": "true"}),
        (f"/portfolios/{pk}/trade/preview/?side=SELL&ticker=AAPL", {"HTTP_HX_REQUEST": "true"}),
        (f"/portfolios/{pk}/delete/", {"HTTP_HX_REQUEST": "true"}),
    ]
    for url, headers in fragments:
        response = client.get(url, **headers)
        assert response.status_code == 404, url
        assert alices.name not in response.content.decode(), url


def test_anothers_portfolio_and_a_missing_one_look_the_same(client, other_user, alices):
    client.force_login(other_user)
    theirs = client.get(f"/portfolios/{alices.pk}/")
    missing = client.get("/portfolios/999999/")
    assert theirs.status_code == missing.status_code == 404

    def page(response):  # the per-request CSRF token aside
        return re.sub(r"[A-Za-z0-9]{64}", "", response.content.decode())

    assert page(theirs) == page(missing)


def test_the_preview_shows_only_the_quantity_you_own(client, other_user, alices):
    bobs = portfolio_create(owner=other_user, name="Bob's", opening_deposit=Decimal("5000"))
    client.force_login(other_user)
    body = client.get(f"/portfolios/{bobs.pk}/trade/preview/?side=SELL&ticker=AAPL").content
    assert b"You own 5" not in body and b"5.0000" not in body


# --- production settings --------------------------------------------------------------------------
APP_ENV = ("SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "SECURE_COOKIES", "SECURE_SSL_REDIRECT")


def _manage(*args, **env_vars):
    env = {k: v for k, v in os.environ.items() if k not in APP_ENV and k != "SECURE_HSTS_SECONDS"}
    env.update(env_vars)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "DEBUG": "false",
    "SECURE_COOKIES": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "ALLOWED_HOSTS": "example.com",
}


def test_check_deploy_is_clean_with_production_settings():
    key = secrets.token_urlsafe(64)[:50]
    done = _manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY=key, **PRODUCTION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_production_refuses_to_start_without_a_secret_key():
    done = _manage("check", **PRODUCTION)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert "SECRET_KEY" in done.stderr
    assert "example.com" in done.stderr


def test_a_fresh_clone_and_a_local_production_start_without_a_secret_key():
    assert _manage("check").returncode == 0
    local = _manage("check", DEBUG="false", ALLOWED_HOSTS="127.0.0.1,localhost,[::1]")
    assert local.returncode == 0, local.stderr
    debug = _manage("check", DEBUG="true", ALLOWED_HOSTS="example.com")
    assert debug.returncode == 0, debug.stderr


def test_every_page_carries_a_content_security_policy_of_our_own_sources(client):
    policy = client.get("/accounts/login/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline script, no eval
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
