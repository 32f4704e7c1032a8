"""Redis dies under a running app, then comes back.

The app runs under gunicorn against a Redis the test owns; the test SIGKILLs it mid-run. Pages
and trades go on from the database tier, the quota fails closed (no upstream call is made while
it cannot count), the cache error is logged once per interval rather than once per request, and
when Redis is back on the same port the cache is written and read again.
"""

import logging
import re
import time

import pytest

from papertrade.logging import OncePerInterval
from tests.faults.conftest import live_on_sqlite, write_config

# The app under test has its own database; this mark only makes the session set up the test
# database, which the root conftest's cache-clearing fixture talks to.
pytestmark = pytest.mark.django_db

IGNORED = re.compile(r"ERROR django_redis\.cache Exception ignored")
CURRENT_IBM = "papertrade:1:md:v2:current:IBM"


def test_pages_and_trades_survive_redis_dying_and_the_cache_returns_with_it(
    tmp_path, redis_server, make_app, fake_av
):
    config = write_config(
        tmp_path / "config.toml",
        min_seconds_between_calls="0.0",
        per_minute="1000",
        per_day="1000",
        error_log_interval_seconds="3600",
        cache_skip_seconds="1.0",  # how long the process leaves the dead Redis alone
    )
    app = make_app(
        live_on_sqlite(tmp_path, redis_url=redis_server.url, fake_av=fake_av, config=config)
    )
    pk = app.setup()
    app.serve()
    alice = app.browser()
    assert alice.get(f"/portfolios/{pk}/").status_code == 200

    redis_server.kill()

    # Every page a person uses, several times over: all answer from the database.
    for _ in range(3):
        for path in ("/", f"/portfolios/{pk}/", f"/portfolios/{pk}/live/", "/stocks/IBM/"):
            response = alice.get(path)
            assert response.status_code == 200, (path, response.status_code)
    page = alice.get("/stocks/IBM/").text
    assert "$149.02" in page and "stale" in page  # the stored close, honestly badged

    # A trade fills at the stored price.
    bought = alice.post(
        f"/portfolios/{pk}/trade/", {"side": "BUY", "ticker": "IBM", "quantity": "2"}
    )
    assert bought.status_code == 302, bought.text[-500:]
    holdings = alice.get(f"/portfolios/{pk}/").text
    assert "IBM" in holdings and "$298.04" in holdings  # 2 × 149.02, valued from the database

    # Nothing local matches this query, so the search would ask the provider: the quota cannot
    # count while Redis is down, so it refuses (fails closed) and no call goes out.
    assert alice.get("/symbols/suggest/?q=zzqx").status_code == 200
    assert fake_av.count() == 0, fake_av.requests

    # The outage is in the log once (per interval, per process), not once per cache call.
    assert len(IGNORED.findall(app.log_text())) == 1, app.log_text()[-4000:]

    # Redis returns on the same port, empty: the next page warms it, the one after reads it.
    redis_server.start()
    raw = redis_server.client()
    time.sleep(1.2)  # past the skip interval: the next page tries Redis again
    assert alice.get(f"/portfolios/{pk}/").status_code == 200
    assert raw.exists(CURRENT_IBM)
    hits = raw.info("stats")["keyspace_hits"]
    assert alice.get(f"/portfolios/{pk}/live/").status_code == 200
    assert raw.info("stats")["keyspace_hits"] > hits
    # And the quota counts again, so the search may spend its one call.
    assert alice.get("/symbols/suggest/?q=zzqx").status_code == 200
    assert fake_av.count("SYMBOL_SEARCH") == 1
    assert len(IGNORED.findall(app.log_text())) == 1


def test_a_repeated_error_is_logged_once_per_interval_with_a_count_of_the_rest():
    now = [1000.0]
    once = OncePerInterval(60, clock=lambda: now[0])

    def record():
        return logging.LogRecord("django_redis.cache", logging.ERROR, "", 0, "Exception ignored",
                                 (), None)  # fmt: skip

    first = record()
    assert once.filter(first)
    assert [once.filter(record()) for _ in range(50)] == [False] * 50
    now[0] += 59
    assert not once.filter(record())
    now[0] += 2
    later = record()
    assert once.filter(later)
    assert later.getMessage() == "Exception ignored (51 more like it in the last 60 s not logged)"
