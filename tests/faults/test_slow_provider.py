"""A slow provider (it answers after the timeout), or one behind a network partition (a proxy
that accepts connections and never forwards them), never holds a web request.

The app runs as it does in production, in subprocesses: gunicorn, a Celery worker, Redis as
cache and broker (a server this test owns). Eight people open stock pages of tickers nothing is
stored for while another person browses her portfolio. The pages answer at once with
"Fetching…"; the fetches run in the worker, and the pages learn of the outcome by polling. The
bystander's pages stay fast, no request runs past the configured budget (plus 0.5 s), and an
order placed meanwhile is refused with a clear message and writes nothing.
"""

from __future__ import annotations

import re
import statistics
import threading
import time

import pytest
import requests

from conftest import PROVIDER_KEY
from tests.faults.conftest import write_config

pytestmark = pytest.mark.django_db

DAILY = "TIME_SERIES_DAILY"
BUDGET = 1.0  # market_data.request_budget_seconds
TIMEOUT = 0.5  # market_data.request_timeout_seconds: the provider answers after 3 s
PEOPLE = 8


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@pytest.mark.parametrize("fault", ["slow", "partition"])
def test_a_slow_provider_never_holds_a_web_request(
    tmp_path, redis_server, make_app, fake_av, celery_worker, tcp_proxy, fault
):
    config = write_config(
        tmp_path / "config.toml",
        min_seconds_between_calls="0.0",
        per_minute="1000",
        per_day="1000",
        request_timeout_seconds=str(TIMEOUT),
        request_budget_seconds=str(BUDGET),
        failures_to_open="1000",  # the breaker is tested apart: here every fetch is tried
    )
    proxy = tcp_proxy(("127.0.0.1", fake_av.port))
    app = make_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite3'}",
            "REDIS_URL": redis_server.url,
            "CELERY_BROKER_URL": redis_server.url.replace("/0", "/1"),
            "ALPHA_VANTAGE_API_KEY": PROVIDER_KEY,
            "ALPHA_VANTAGE_BASE_URL": f"http://127.0.0.1:{proxy.port}/query",
            "PAPERTRADE_CONFIG": str(config),
        }
    )
    portfolio = app.setup()
    # A thread for each person, the bystander and the order: what is measured is how long the
    # app holds a request, not how long a request queues for a thread while eight others wait
    # out their budget (with 4 threads the order queued 0.3-0.5 s before the app saw it).
    app.serve(threads=PEOPLE + 4)
    if fault == "slow":
        fake_av.slow(3.0)
    else:
        proxy.blackhole()
    celery_worker(app)
    browsers = [app.browser() for _ in range(PEOPLE + 1)]
    for browser in browsers:
        # A new connection each request: gunicorn closes idle kept-alive ones, and a request
        # sent on one just as it closes comes back "reset by peer".
        browser.session.headers["Connection"] = "close"
    bystander, people = browsers[0], browsers[1:]
    try:  # warm: the first page builds the calendar
        bystander.get(f"/portfolios/{portfolio}/")
    except requests.ConnectionError:  # reset before it was read (see ``timed``): once more
        bystander.get(f"/portfolios/{portfolio}/")
    durations: dict[str, list[float]] = {"bystander": [], "people": [], "polls": []}
    pages: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    resets: list[str] = []

    def timed(kind: str, browser, path: str):
        started = time.monotonic()
        try:
            response = browser.get(path)
        except requests.ConnectionError:
            # gunicorn's threaded worker, eight connections over its four threads on two
            # shared cores, now and then resets one before reading it: a refusal, not a wait.
            # Counted, and asked again once.
            resets.append(path)
            response = browser.get(path)
        with lock:
            durations[kind].append(time.monotonic() - started)
        assert response.status_code in (200, 204), (path, response.status_code)
        return response

    def browse() -> None:
        while not stop.is_set():
            timed("bystander", bystander, f"/portfolios/{portfolio}/")
            timed("bystander", bystander, f"/portfolios/{portfolio}/live/")

    def open_new_stock(n: int) -> None:
        ticker = f"SLOW{n}"
        page = timed("people", people[n], f"/stocks/{ticker}/")
        with lock:
            pages.append(page.text)
        since = re.search(r"price-status/\?since=(\d+)", page.text)
        assert since, page.text[:2000]
        # The page polls until the fetch is over (two attempts of 0.5 s each, in the worker).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = timed(
                "polls", people[n], f"/stocks/{ticker}/price-status/?since={since.group(1)}"
            )
            if status.headers.get("HX-Refresh") == "true":
                return
            time.sleep(0.5)
        raise AssertionError(f"{ticker}: the fetch never ended")

    browsing = threading.Thread(target=browse)
    browsing.start()
    time.sleep(1.0)
    threads = [threading.Thread(target=open_new_stock, args=(n,)) for n in range(PEOPLE)]
    for thread in threads:
        thread.start()
    # Meanwhile someone places an order for a ticker nothing is stored for.
    started = time.monotonic()
    order = bystander.post(
        f"/portfolios/{portfolio}/trade/",
        {"side": "BUY", "ticker": "SLOWBUY", "quantity": "1"},
    )
    order_seconds = time.monotonic() - started
    for thread in threads:
        thread.join(timeout=60)
    time.sleep(1.0)
    stop.set()
    browsing.join(timeout=60)
    after = people[0].get("/stocks/SLOW0/")

    assert len(resets) <= 2, resets
    assert len(pages) == PEOPLE
    assert all("Fetching the latest price of SLOW" in page for page in pages)
    # Every fetch ran in the worker: two attempts a ticker (the call and its retry).
    if fault == "slow":
        calls = {n: fake_av.count(DAILY, f"SLOW{n}") for n in range(PEOPLE)}
        assert calls == {n: 2 for n in range(PEOPLE)}, calls
    else:  # every attempt reached the partition, and none the provider
        assert proxy.connections >= 2 * PEOPLE
        assert fake_av.count() == 0
    # The outcome is shown once the fetch is over: the provider failed, nothing is stored.
    assert after.status_code == 200
    assert "could not be fetched" in after.text or "timed out" in after.text, after.text[:2000]

    assert order.status_code == 422
    assert "SLOWBUY is being fetched" in order.text
    assert order_seconds <= BUDGET + 0.5
    written = app.python(
        "from portfolios.models import Transaction\nprint(Transaction.objects.count())"
    )
    assert written.strip() == "1"  # the opening deposit only

    everyone = durations["people"] + durations["polls"] + durations["bystander"]
    assert max(everyone) <= BUDGET + 0.5, sorted(everyone)[-5:]
    # The stock pages do not wait at all (a wait of the budget would take them past it); the
    # margin is for eight of them rendered at once on two shared cores.
    assert max(durations["people"]) < 0.9 * BUDGET, durations["people"]
    assert len(durations["bystander"]) >= 20
    assert percentile(durations["bystander"], 95) <= 0.5, sorted(durations["bystander"])[-5:]
