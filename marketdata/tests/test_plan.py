"""The refresh plan (PRODUCT §12): every ticker that needs a fresh bar, in priority order,
assigned to the daily run that will serve it; the scheduled job fetches run 1 of it."""

import dataclasses
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from marketdata.plan import refresh_plan
from marketdata.port import session_date
from marketdata.quota import Priority
from marketdata.refresh import RUN_LOCK_KEY, refresh_prices
from marketdata.tests.factories import store_bars
from marketdata.trading_calendar import latest_due_close
from portfolios.models import Holding

pytestmark = pytest.mark.django_db
HELD = ("ZZH1", "ZZH2", "ZZH3")  # last by name, first by priority


def configure(settings, *, per_day: int, reserve: int, watchlist=()) -> None:
    quota = dataclasses.replace(
        settings.PAPERTRADE.quota,
        per_day=per_day,
        interactive_reserve=reserve,
        per_minute=1000,
        min_seconds_between_calls=0.0,
    )
    refresh = dataclasses.replace(settings.PAPERTRADE.refresh, watchlist=tuple(watchlist))
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, quota=quota, refresh=refresh)


@pytest.fixture
def thousand_stale(portfolio):
    """1,000 stored tickers, each with one bar a week older than the session due now (so all
    are stale), the older the later their name; three of them held."""
    due = session_date(latest_due_close(timezone.now(), timedelta(minutes=60)))
    from marketdata.models import Interval, PriceHistory
    from marketdata.port import close_of

    names = [f"T{i:03d}" for i in range(997)] + list(HELD)
    rows = [
        PriceHistory(
            ticker=name,
            interval=Interval.DAILY,
            timestamp=close_of(due - timedelta(days=7 + i % 5)),
            open=Decimal(10),
            high=Decimal(11),
            low=Decimal(9),
            close=Decimal(10),
            volume=1,
            source="import",
            fetched_at=timezone.now(),
        )
        for i, name in enumerate(names)
    ]
    PriceHistory.objects.bulk_create(rows)
    for ticker in HELD:
        Holding.objects.create(
            portfolio=portfolio, ticker=ticker, quantity=Decimal(1), cost_basis=Decimal(10)
        )
    return names


def test_the_plan_lists_held_tickers_first_and_says_how_long_coverage_takes(
    settings, thousand_stale
):
    configure(settings, per_day=25, reserve=5)
    out = StringIO()
    call_command("refresh_prices", "--plan", stdout=out)
    lines = out.getvalue().splitlines()
    assert sorted(line.split()[0] for line in lines[:3]) == sorted(HELD)
    assert all(line.split()[1:3] == ["held", "run"] for line in lines[:3])
    assert lines[-1] == (
        "plan: 1000 tickers need a refresh, 20 scheduled calls a day, full coverage in 50 runs"
    )
    assert len(lines) == 1001
    last = lines[-2].split()
    assert (last[1], last[2], last[3]) == ("backfill", "run", "50")


def test_within_a_priority_the_oldest_bar_goes_first_and_nothing_stored_first_of_all(settings, db):
    configure(settings, per_day=25, reserve=5, watchlist=("NEWW", "OLDW", "MIDW"))
    due = session_date(latest_due_close(timezone.now(), timedelta(minutes=60)))
    store_bars("OLDW", [(due - timedelta(days=30), "1.0000")])
    store_bars("MIDW", [(due - timedelta(days=10), "1.0000")])
    plan = refresh_plan()
    assert [t.ticker for t in plan.tickers] == ["NEWW", "OLDW", "MIDW"]
    assert {t.priority for t in plan.tickers} == {Priority.WATCHLIST}


def test_the_scheduled_job_fetches_exactly_the_plans_first_run(
    settings, thousand_stale, live, fake_av
):
    configure(settings, per_day=25, reserve=5)
    settings.ALPHA_VANTAGE_API_KEY = (
        live.upstream.client.api_key if False else settings.ALPHA_VANTAGE_API_KEY
    )
    first_run = [t.ticker for t in refresh_plan().run(1)]
    assert len(first_run) == 20 and sorted(first_run[:3]) == sorted(HELD)

    summary = refresh_prices()

    asked = [symbol for function, symbol, _ in fake_av.requests if function == "TIME_SERIES_DAILY"]
    assert asked == first_run
    assert summary.refreshed == tuple(first_run)
    assert len(summary.deferred) == 980 and "wait for later runs" in summary.note


def test_a_second_scheduler_finds_the_run_under_way_and_fetches_nothing(
    settings, thousand_stale, live, fake_av
):
    configure(settings, per_day=25, reserve=5)
    cache.add(RUN_LOCK_KEY.format(session=refresh_plan().due), "another beat", 60)
    summary = refresh_prices()
    assert fake_av.count() == 0
    assert "under way" in summary.note


def test_the_status_page_shows_the_plan_the_next_run_and_the_held_tickers_left_waiting(
    settings, thousand_stale, client, django_user_model
):
    configure(settings, per_day=4, reserve=2)  # two a day: one held ticker waits a run
    staff = django_user_model.objects.create_user("ops", password="x" * 12, is_staff=True)
    client.force_login(staff)
    body = client.get("/market-data/status/").content.decode()
    plan = body[body.index('id="plan"') :]
    plan = plan[: plan.index("</section>")]
    assert "plan: 1000 tickers need a refresh, 2 scheduled calls a day, full coverage in 500" in (
        plan
    )
    assert "1 held ticker will be more than one session stale before its turn" in plan
    assert "A larger quota" in plan
    assert "The next run" in plan and "fetches 2 at most" in plan


def test_the_same_run_redelivered_takes_its_own_lock_back(settings, thousand_stale, live, fake_av):
    configure(settings, per_day=25, reserve=5)
    cache.add(RUN_LOCK_KEY.format(session=refresh_plan().due), "task-1", 60)  # its worker died
    summary = refresh_prices(run_id="task-1")
    assert "under way" not in summary.note and len(summary.refreshed) == 20
