"""Failed log-ins slow an attacker without letting anyone lock a person out (PRODUCT §8):
an account from one address pauses after five wrong passwords, for a minute that doubles with
each further one; an account from anywhere and an address across accounts have ceilings of
their own; ``X-Forwarded-For`` counts only from a trusted proxy."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.test import Client
from django.utils import timezone

from accounts.models import LoginThrottle
from accounts.throttle import client_address

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
HERE, ELSEWHERE = "198.51.100.7", "203.0.113.9"


def _log_in(client, username, password):
    return client.post(LOGIN, {"username": username, "password": password})


def _logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def _time_passes(delta: timedelta) -> None:
    """Move every recorded failure and pause ``delta`` into the past."""
    LoginThrottle.objects.update(
        first_failure=F("first_failure") - delta,
        last_failure=F("last_failure") - delta,
        blocked_until=F("blocked_until") - delta,
    )


def test_the_fifth_wrong_password_pauses_the_account_from_that_address_for_a_minute(
    user, other_user, password
):
    alice = Client(REMOTE_ADDR=HERE)
    for attempt in range(1, 5):
        response = _log_in(alice, "alice", f"wrong-{attempt}")
        assert response.status_code == 200, attempt
        assert "Please enter a correct username and password" in response.content.decode()
    fifth = _log_in(alice, "alice", "wrong-5")
    assert fifth.status_code == 429
    body = fifth.content.decode()
    assert "Logging in as <strong>alice</strong> from this network is paused" in body
    assert "after 5 wrong passwords in a row" in body and "Try again in 1 minute." in body
    right = _log_in(alice, "alice", password)
    assert right.status_code == 429 and not _logged_in(alice)
    assert "Sign up" in alice.get("/").content.decode()  # the landing page, not the dashboard
    # Bob from the same address, and Alice from another, are not affected.
    bob = Client(REMOTE_ADDR=HERE)
    assert _log_in(bob, "bob", password).status_code == 302 and _logged_in(bob)
    elsewhere = Client(REMOTE_ADDR=ELSEWHERE)
    assert _log_in(elsewhere, "alice", password).status_code == 302 and _logged_in(elsewhere)


def test_each_further_wrong_password_doubles_the_pause_up_to_fifteen_minutes(user):
    client = Client(REMOTE_ADDR=HERE)
    for attempt in range(5):
        _log_in(client, "alice", f"wrong-{attempt}")
    waits = []
    for attempt in range(5):
        _time_passes(timedelta(minutes=16))  # longer than any pause, shorter than a day
        response = _log_in(client, "alice", f"again-{attempt}")
        assert response.status_code == 429
        waits.append(response.context["pause"].minutes)
    assert waits == [2, 4, 8, 15, 15]


def test_tries_during_a_pause_are_refused_unchecked_and_do_not_lengthen_it(user, password):
    client = Client(REMOTE_ADDR=HERE)
    for attempt in range(5):
        _log_in(client, "alice", f"wrong-{attempt}")
    pair = LoginThrottle.objects.get(scope=LoginThrottle.Scope.ACCOUNT_ADDRESS)
    for attempt in range(20):
        assert _log_in(client, "alice", f"hammer-{attempt}").status_code == 429
    after = LoginThrottle.objects.get(pk=pair.pk)
    assert (after.failures, after.blocked_until) == (5, pair.blocked_until)
    # The pause ends on time; the right password then gets in and wipes the typos.
    _time_passes(timedelta(minutes=1, seconds=1))
    assert _log_in(client, "alice", password).status_code == 302 and _logged_in(client)
    assert not LoginThrottle.objects.filter(scope=LoginThrottle.Scope.ACCOUNT_ADDRESS).exists()
    client.logout()
    typo = _log_in(client, "alice", "typo")
    assert typo.status_code == 200  # the first of five again, not the sixth
    assert LoginThrottle.objects.get(scope=LoginThrottle.Scope.ACCOUNT_ADDRESS).failures == 1


def test_a_day_without_failures_forgets_them(user):
    client = Client(REMOTE_ADDR=HERE)
    for attempt in range(4):
        _log_in(client, "alice", f"wrong-{attempt}")
    _time_passes(timedelta(days=1, seconds=1))
    assert _log_in(client, "alice", "wrong-again").status_code == 200
    assert LoginThrottle.objects.get(scope=LoginThrottle.Scope.ACCOUNT_ADDRESS).failures == 1


def test_guessing_one_account_from_many_addresses_meets_a_higher_ceiling(user, password):
    # 4 guesses from each of 13 addresses: never 5 from one, 52 in all (the ceiling is 50).
    answers = [
        _log_in(Client(REMOTE_ADDR=f"192.0.2.{n}"), "alice", f"guess-{n}-{k}").status_code
        for n in range(13)
        for k in range(4)
    ]
    assert answers[:49] == [200] * 49 and set(answers[49:]) == {429}
    fresh = Client(REMOTE_ADDR=ELSEWHERE)
    refused = _log_in(fresh, "alice", password)
    assert refused.status_code == 429 and not _logged_in(fresh)
    assert "too many wrong passwords were tried for this account lately" in refused.content.decode()
    _time_passes(timedelta(hours=1))
    assert _log_in(fresh, "alice", password).status_code == 302


def test_spraying_many_usernames_from_one_address_is_throttled(django_user_model, password):
    for n in range(20):
        django_user_model.objects.create_user(username=f"user{n}", password=password)
    sprayer = Client(REMOTE_ADDR="198.51.100.66")
    answers = [
        _log_in(sprayer, f"user{n}", f"guess-{round_}").status_code
        for round_ in range(4)
        for n in range(20)
    ]  # 80 failures, 4 a username: under the per-account pause, over the per-address limit
    assert answers[:39] == [200] * 39 and set(answers[39:]) == {429}
    refused = _log_in(sprayer, "user0", password)
    body = refused.content.decode()
    assert refused.status_code == 429 and "too many wrong passwords were tried from it" in body
    assert "Try again in 15 minutes." in body
    # Only 40 were checked; the 40 refused ones were not counted.
    assert LoginThrottle.objects.get(scope=LoginThrottle.Scope.ADDRESS).failures == 40
    # Another address is not affected, nor is a user there.
    assert _log_in(Client(REMOTE_ADDR="203.0.113.5"), "user0", password).status_code == 302
    # A valid log-in from the sprayer's address (once the window ends) does not reset its count.
    _time_passes(timedelta(minutes=15))
    assert _log_in(sprayer, "user0", password).status_code == 302


def test_a_refusal_reveals_nothing_about_whether_the_account_exists(user):
    real, ghost = Client(REMOTE_ADDR=HERE), Client(REMOTE_ADDR=ELSEWHERE)
    for attempt in range(5):
        last_real = _log_in(real, "alice", f"wrong-{attempt}")
        last_ghost = _log_in(ghost, "nobody", f"wrong-{attempt}")
    assert last_real.status_code == last_ghost.status_code == 429

    def said(response, username):
        body = response.content.decode()
        return body[body.index('id="locked-out"') : body.index("</section>")].replace(username, "X")

    assert said(last_real, "alice") == said(last_ghost, "nobody")


def test_the_table_stays_small_and_a_successful_sign_up_counts_nothing(client, password):
    LoginThrottle.objects.create(
        scope=LoginThrottle.Scope.ADDRESS,
        key="192.0.2.200",
        failures=3,
        first_failure=timezone.now() - timedelta(days=2),
        last_failure=timezone.now() - timedelta(days=2),
    )
    _log_in(Client(REMOTE_ADDR=HERE), "carol", "nope")  # any failure sweeps day-old rows
    assert not LoginThrottle.objects.filter(key="192.0.2.200").exists()
    response = client.post(
        "/accounts/signup/", {"username": "carol", "password1": password, "password2": password}
    )
    assert response.status_code == 302


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(settings, rf):
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.9")
    assert client_address(request) == "10.0.0.2"  # nobody trusted: the peer is the client
    settings.TRUSTED_PROXIES = frozenset({"10.0.0.2"})
    assert client_address(request) == "198.51.100.9"  # the nearest hop the proxy saw
    settings.TRUSTED_PROXIES = frozenset({"10.0.0.2", "198.51.100.9"})
    assert client_address(request) == "6.6.6.6"


def test_behind_a_trusted_proxy_each_client_is_paused_on_its_own(settings, user, password):
    settings.TRUSTED_PROXIES = frozenset({"10.0.0.2"})
    attacker = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.66")
    for attempt in range(6):
        _log_in(attacker, "alice", f"wrong-{attempt}")
    assert _log_in(attacker, "alice", password).status_code == 429
    owner = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert _log_in(owner, "alice", password).status_code == 302
