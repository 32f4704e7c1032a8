"""PostgreSQL stops under a running app, even in the middle of a trade, then comes back.

The app runs under gunicorn against a PostgreSQL cluster of the test's own (``initdb`` on a
spare port), with the cache in that database as on the embedded default. The test stops the
cluster in the middle of a buy's transaction: that request and every one after it get a plain
503 page saying nothing was changed; when the cluster is back, nothing was half-written and the
ledger and the holdings agree (``recompute_holdings`` exits 0).
"""

import threading
import time

import pytest
import requests

from conftest import PROVIDER_KEY
from tests.faults.conftest import wait_for, write_config

# The app under test has its own database; this mark only makes the session set up the test
# database, which the root conftest's cache-clearing fixture talks to.
pytestmark = pytest.mark.django_db

DAILY = "TIME_SERIES_DAILY"
SAYS = "The database is not answering; nothing was changed"
STALL_MSFT_HOLDING = """
CREATE FUNCTION pt_fault_stall() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$;
CREATE TRIGGER pt_fault_stall BEFORE INSERT OR UPDATE ON portfolios_holding
FOR EACH ROW WHEN (NEW.ticker = 'MSFT') EXECUTE FUNCTION pt_fault_stall();
"""


def test_a_stopped_database_gets_a_clear_503_and_nothing_is_half_written(
    tmp_path, pg_cluster, make_app, fake_av, redis_server, celery_worker
):
    config = write_config(
        tmp_path / "config.toml",
        min_seconds_between_calls="0.0",
        per_minute="1000",
        per_day="1000",
    )
    app = make_app(
        {
            "DATABASE_URL": pg_cluster.url,
            # A trade's fetch runs in a Celery worker: it needs a broker the worker shares.
            "CELERY_BROKER_URL": redis_server.url,
            "ALPHA_VANTAGE_API_KEY": PROVIDER_KEY,
            "ALPHA_VANTAGE_BASE_URL": fake_av.url,
            "PAPERTRADE_CONFIG": str(config),
        }
    )
    pk = app.setup()
    app.serve()
    celery_worker(app)
    alice = app.browser()
    buy = f"/portfolios/{pk}/trade/"
    # IBM's stored bars are old: the first order may be asked to wait for the fetch the worker
    # is making ("being fetched; place the order again"), as a person would be on a busy host.
    deadline = time.monotonic() + 30
    while (
        ordered := alice.post(buy, {"side": "BUY", "ticker": "IBM", "quantity": "2"})
    ).status_code != 302:
        assert ordered.status_code == 422 and "being fetched" in ordered.text, ordered.status_code
        assert time.monotonic() < deadline, "the fetch never came"
        time.sleep(0.5)

    # A buy of MSFT stops inside its database transaction: its ledger row is written, and a
    # trigger (test scaffolding) holds the holding's write; the database stops right then.
    fake_av.route(DAILY, "MSFT", fake_av.default_daily("MSFT"))
    pg_cluster.sql(STALL_MSFT_HOLDING)
    answers = {}
    in_flight = threading.Thread(
        target=lambda: answers.update(
            msft=alice.post(buy, {"side": "BUY", "ticker": "MSFT", "quantity": "1"})
        )
    )
    in_flight.start()
    stalled = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
    wait_for(lambda: pg_cluster.sql(stalled) == [(1,)], what="the MSFT buy to stall")
    pg_cluster.stop("fast")
    in_flight.join(timeout=120)
    assert answers["msft"].status_code == 503
    assert SAYS in answers["msft"].text

    # Pages, forms and polls while it is down: the same clear page, never a 500.
    for response in (
        alice.get("/"),
        alice.get(f"/portfolios/{pk}/"),
        alice.get(f"/portfolios/{pk}/live/"),
        alice.post(f"/portfolios/{pk}/deposit/", {"deposit-amount": "50.00"}),
        alice.post(buy, {"side": "SELL", "ticker": "IBM", "quantity": "1"}),
    ):
        assert response.status_code == 503, response.request.url
        assert SAYS in response.text
        assert response.headers["Retry-After"]
    health = requests.get(app.url + "/healthz", timeout=60)  # a monitor: no session cookie
    assert health.status_code == 503 and health.json()["checks"]["database"] == "error"
    # Quiet and true in the log: one ERROR for the outage (one web process here), a WARNING
    # line per request answered 503, and no "Internal Server Error" traceback.
    log = app.log_text()
    assert log.count("ERROR papertrade.middleware the database stopped answering") == 1, log[-3000:]
    assert log.count("WARNING papertrade.middleware database unavailable:") >= 6
    assert "Internal Server Error" not in log and "Traceback" not in log, log[-3000:]

    pg_cluster.start()
    assert alice.get(f"/portfolios/{pk}/").status_code == 200
    assert "the database answers again" in app.log_text()
    ledger = pg_cluster.sql(
        f"SELECT kind, ticker, quantity FROM portfolios_transaction WHERE portfolio_id = {pk} "
        "ORDER BY id"
    )
    assert [(kind, ticker) for kind, ticker, _ in ledger] == [("DEPOSIT", ""), ("BUY", "IBM")]
    assert pg_cluster.sql(f"SELECT ticker FROM portfolios_holding WHERE portfolio_id = {pk}") == [
        ("IBM",)
    ]
    # It trades again, and the running totals agree with the ledger.
    assert alice.post(buy, {"side": "SELL", "ticker": "IBM", "quantity": "1"}).status_code == 302
    checked = app.manage("recompute_holdings", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 portfolios checked, 0 disagreed" in checked.stdout
