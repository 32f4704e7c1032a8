"""The cast and the stage: users, portfolios, stored prices; and the rule that tests needing a
real PostgreSQL or Redis skip only where none is configured, never in CI."""

import os
from datetime import date
from decimal import Decimal

import hypothesis
import pytest
from django.core.cache import cache

REQUIRE_SERVICES = os.environ.get("PAPERTRADE_REQUIRE_SERVICES") == "1"

# Property-based tests: modest by default (two shared cores); HYPOTHESIS_PROFILE=thorough for
# a deep run. No deadline: a request's time depends on the machine, not on the property.
_slow_is_fine = [hypothesis.HealthCheck.too_slow]
hypothesis.settings.register_profile(
    "default", max_examples=50, deadline=None, suppress_health_check=_slow_is_fine
)
hypothesis.settings.register_profile(
    "thorough", max_examples=3000, deadline=None, suppress_health_check=_slow_is_fine
)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def on_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


def on_redis() -> bool:
    from django.conf import settings

    return "RedisCache" in settings.CACHES["default"]["BACKEND"]


def pytest_configure(config) -> None:
    """The suite keeps the plain static storage, which needs no collectstatic: in this process
    and in the servers it starts (they inherit the environment). The production storage is
    checked by tests/deploy/test_static_files.py, against a server of its own."""
    os.environ["PAPERTRADE_PLAIN_STATIC"] = "1"
    from django.conf import settings

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = True


def pytest_sessionstart(session) -> None:
    if REQUIRE_SERVICES:
        import django

        django.setup()
        if not on_postgres() or not on_redis():
            raise pytest.UsageError(
                "PAPERTRADE_REQUIRE_SERVICES=1 but the suite is not configured for PostgreSQL "
                "and Redis: set DATABASE_URL=postgres://... and REDIS_URL=redis://..."
            )


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if "postgres" in item.keywords and not REQUIRE_SERVICES and not on_postgres():
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL"))
        if "redis" in item.keywords and not REQUIRE_SERVICES and not on_redis():
            item.add_marker(pytest.mark.skip(reason="needs Redis: set REDIS_URL"))


DB_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "live_server"}


@pytest.fixture(autouse=True)
def _fresh_cache(request, django_db_setup, django_db_blocker):
    """Each test using the database starts with an empty cache, as with an empty test
    database, and with this process trusting Redis again (a test that broke Redis must not
    leave the next one skipping it). A session of tests that use none sets no test database
    up, so their settings still name the configured ones: those are left alone."""
    from papertrade import redis_breaker

    redis_breaker.reset()
    if request.node.get_closest_marker("django_db") or DB_FIXTURES & set(request.fixturenames):
        with django_db_blocker.unblock():
            cache.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Real hashing costs ~0.5 s a user by design; tests need no protection from brute force."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def password() -> str:
    return "correct-horse-battery-staple"


@pytest.fixture
def user(django_user_model, password):
    return django_user_model.objects.create_user(username="alice", password=password)


@pytest.fixture
def other_user(django_user_model, password):
    return django_user_model.objects.create_user(username="bob", password=password)


@pytest.fixture
def auth_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def portfolio(user):
    from portfolios.services import portfolio_create

    return portfolio_create(owner=user, name="Main", opening_deposit=Decimal("10000.00"))


@pytest.fixture
def aapl(db):
    """AAPL's last two real closes before the demo data ends (Thu 2023-11-09, Fri 2023-11-10)."""
    from marketdata.tests.factories import store_bars

    return store_bars("AAPL", [(date(2023, 11, 9), "182.4100"), (date(2023, 11, 10), "186.4000")])


@pytest.fixture
def ibm(db):
    from marketdata.tests.factories import store_bars

    return store_bars("IBM", [(date(2023, 11, 9), "146.6200"), (date(2023, 11, 10), "149.0200")])


# --- the provider, faked at the process boundary ---------------------------------------------
PROVIDER_KEY = "PTKEY0SECRET9876"  # recognisable, so tests can search for leaks


@pytest.fixture
def fake_av():
    """A local fake Alpha Vantage (HTTP on 127.0.0.1) that counts every request."""
    from marketdata.testing.fake_alpha_vantage import FakeAlphaVantage

    with FakeAlphaVantage() as server:
        yield server


@pytest.fixture
def live(settings, fake_av):
    """The app configured live against ``fake_av``, with a roomy quota (limits are tested
    apart): returns the price port."""
    import dataclasses

    from marketdata.wiring import get_market_data

    settings.ALPHA_VANTAGE_API_KEY = PROVIDER_KEY
    settings.ALPHA_VANTAGE_BASE_URL = fake_av.url
    roomy = dataclasses.replace(
        settings.PAPERTRADE.quota, min_seconds_between_calls=0.0, per_minute=1000, per_day=1000
    )
    # The weekly fetch of splits and dividends is off (two calls a ticker in every refresh);
    # the tests of it turn it on.
    quiet = dataclasses.replace(settings.PAPERTRADE.refresh, actions_every_days=0)
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, quota=roomy, refresh=quiet)
    from papertrade.celery import app

    # A web request's fetch runs in a Celery worker; here, at once, in the requesting thread.
    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    port = get_market_data()
    assert port.upstream is not None
    yield port
    app.conf.task_always_eager, app.conf.task_eager_propagates = before
