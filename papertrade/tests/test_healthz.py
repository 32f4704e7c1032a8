import pytest

pytestmark = pytest.mark.django_db


def test_it_reports_every_service_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "broker": "ok"},
    }


def test_it_answers_503_when_the_broker_is_unreachable(client):
    from papertrade.celery import app

    good = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = good
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "error"
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_a_commit_does_not_say_nothing_was_changed(client, monkeypatch, caplog):
    from django.contrib.auth import get_user_model
    from django.db import OperationalError

    from portfolios import services
    from portfolios.models import Portfolio

    user = get_user_model().objects.create_user(username="alice", password="x-long-password-1")
    portfolio = services.portfolio_create(owner=user, name="Main")
    rename = services.portfolio_rename

    def rename_then_lose_the_database(**kwargs):
        rename(**kwargs)  # committed
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "portfolio_rename", rename_then_lose_the_database)
    client.force_login(user)
    response = client.post(f"/portfolios/{portfolio.pk}/rename/", {"name": "Renamed"})
    assert response.status_code == 503
    body = response.content.decode()
    assert "may have been saved" in body and "nothing was changed" not in body
    assert Portfolio.objects.get().name == "Renamed"
    # Before any write went through, the page says so.
    monkeypatch.setattr(
        services, "portfolio_deposit", lambda **kw: (_ for _ in ()).throw(OperationalError("x"))
    )
    response = client.post(f"/portfolios/{portfolio.pk}/deposit/", {"deposit-amount": "5"})
    assert response.status_code == 503 and "nothing was changed" in response.content.decode()
    assert [r.levelname for r in caplog.records if r.name == "papertrade.middleware"] == [
        "ERROR",  # the outage began
        "WARNING",
        "WARNING",  # one line a request
    ]


def test_it_answers_within_its_bound_naming_the_dependency_that_hangs(client, monkeypatch):
    import threading
    import time

    from papertrade import views

    released = threading.Event()
    monkeypatch.setitem(views.CHECKS, "cache", lambda: released.wait(30))  # a cache that hangs
    monkeypatch.setattr(views, "_local_file", lambda name: False)  # a cache over the network
    try:
        started = time.monotonic()
        response = client.get("/healthz")
        took = time.monotonic() - started
        again = client.get("/healthz")  # the stuck check holds up only its own next check
    finally:
        released.set()
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "cache": "timeout", "broker": "ok"}
    assert views.HEALTHZ_SECONDS <= took < views.HEALTHZ_SECONDS + 1.5, took
    assert (
        again.json()["checks"]["database"] == "ok" and again.json()["checks"]["cache"] == "timeout"
    )
