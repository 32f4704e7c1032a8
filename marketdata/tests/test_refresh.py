"""The scheduled refresh: held tickers, then the watchlist, stale ones only, within the quota's
share, past failures, once a day; and ``manage.py refresh_prices``, its foreground door."""

import dataclasses
import logging
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone

from marketdata.models import PriceHistory
from marketdata.port import session_date
from marketdata.quota import Priority
from marketdata.refresh import (
    LAST_REFRESH_KEY,
    NO_PROVIDER,
    refresh_prices,
    tracked_tickers,
)
from marketdata.tests.factories import store_bars
from marketdata.trading_calendar import latest_due_close
from portfolios.models import Holding
from portfolios.selectors import held_tickers

pytestmark = pytest.mark.django_db
DAILY = "TIME_SERIES_DAILY"
SUMMARY = re.compile(
    r"refreshed=\d+ skipped_fresh=\d+ failed=\d+ deferred=\d+ quota_left_day=(\d+|n/a)"
)


def due_session() -> date:
    """The newest session whose bar should be stored by now: a bar of it is fresh."""
    return session_date(latest_due_close(timezone.now(), timedelta(minutes=60)))


def hold(portfolio, *tickers: str) -> None:
    for ticker in tickers:
        Holding.objects.create(
            portfolio=portfolio, ticker=ticker, quantity=Decimal("1"), cost_basis=Decimal("10")
        )


def watch(settings, *tickers: str) -> None:
    refresh = dataclasses.replace(settings.PAPERTRADE.refresh, watchlist=tickers)
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, refresh=refresh)


def quota(settings, *, per_day: int, interactive_reserve: int) -> None:
    tight = dataclasses.replace(
        settings.PAPERTRADE.quota, per_day=per_day, interactive_reserve=interactive_reserve
    )
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, quota=tight)


def stale(*tickers: str) -> None:
    for ticker in tickers:
        store_bars(ticker, [(date(2023, 11, 10), "10.0000")])


def fresh(*tickers: str) -> None:
    for ticker in tickers:
        store_bars(ticker, [(due_session(), "10.0000")])


def asked(fake) -> list[str]:
    """The tickers whose daily series the provider was asked for, in order."""
    return [symbol for function, symbol, _ in fake.requests if function == DAILY]


# --- what is refreshed, in which order ----------------------------------------------------------
def test_held_tickers_are_one_query_over_every_portfolio(
    portfolio, django_assert_num_queries, other_user
):
    from portfolios.services import portfolio_create

    hold(portfolio, "MSFT", "AAPL")
    hold(portfolio_create(owner=other_user, name="Other"), "AAPL", "IBM")
    with django_assert_num_queries(1):
        assert held_tickers() == ["AAPL", "IBM", "MSFT"]


def test_held_tickers_come_first_then_the_rest_of_the_watchlist(portfolio, settings):
    hold(portfolio, "NVDA", "ZZZ")
    watch(settings, "AAPL", "NVDA", "IBM", "AAPL")
    assert tracked_tickers() == [
        ("NVDA", Priority.HELD),
        ("ZZZ", Priority.HELD),
        ("AAPL", Priority.WATCHLIST),
        ("IBM", Priority.WATCHLIST),
    ]


def test_it_refreshes_the_stale_tickers_and_skips_the_fresh(live, fake_av, portfolio, settings):
    hold(portfolio, "HELD")
    watch(settings, "FRSH", "NEWT")
    stale("HELD")
    fresh("FRSH")

    summary = refresh_prices()

    assert asked(fake_av) == ["HELD", "NEWT"]
    assert summary.refreshed == ("HELD", "NEWT")
    assert summary.skipped_fresh == ("FRSH",)
    assert summary.failed == {} and summary.deferred == ()
    assert PriceHistory.objects.filter(ticker="NEWT").count() == 100


def test_a_quota_of_n_refreshes_the_n_highest_priority_stale_tickers(
    live, fake_av, portfolio, settings
):
    # Four calls a day, one kept for people: the refresh may spend three.
    quota(settings, per_day=4, interactive_reserve=1)
    hold(portfolio, "HLDA", "HLDB")
    watch(settings, "WCHA", "WCHB", "WCHC")

    summary = refresh_prices()

    assert asked(fake_av) == ["HLDA", "HLDB", "WCHA"]
    assert summary.refreshed == ("HLDA", "HLDB", "WCHA")
    assert summary.deferred == ("WCHB", "WCHC")
    assert summary.quota_left_day == 1
    assert "quota is spent" in summary.note
    # The reserve is still there for a person looking up a ticker.
    assert live.get_current_price("PRSN").ticker == "PRSN"
    assert fake_av.count() == 4


def test_a_second_run_the_same_day_makes_no_upstream_call(live, fake_av, portfolio, settings):
    hold(portfolio, "HLDA")
    watch(settings, "WCHA", "WCHB")
    first = refresh_prices()
    assert len(first.refreshed) == 3
    calls = fake_av.count()

    second = refresh_prices()

    assert fake_av.count() == calls
    assert second.refreshed == ()
    assert second.skipped_fresh == ("HLDA", "WCHA", "WCHB")


def test_a_holiday_with_everything_fresh_costs_nothing(live, fake_av, portfolio, settings):
    # Thanksgiving 2023 (Thursday 23 November), evening: Wednesday's close is the latest due.
    hold(portfolio, "HLDA")
    watch(settings, "WCHA")
    for ticker in ("HLDA", "WCHA"):
        store_bars(ticker, [(date(2023, 11, 22), "10.0000")])

    summary = refresh_prices(now=datetime(2023, 11, 24, 1, 0, tzinfo=UTC))

    assert fake_av.count() == 0
    assert summary.skipped_fresh == ("HLDA", "WCHA")


def test_a_failing_ticker_does_not_stop_the_others(live, fake_av, settings, monkeypatch):
    fake_av.unknown("GONE")
    fake_av.route(DAILY, "DOWN", "<html>503 Service Unavailable</html>", status=503)
    watch(settings, "GONE", "DOWN", "GOOD")

    summary = refresh_prices()

    assert summary.refreshed == ("GOOD",)
    assert set(summary.failed) == {"GONE", "DOWN"}
    assert summary.failed["GONE"] == "unknown ticker"
    assert not summary.ok
    assert PriceHistory.objects.filter(ticker="GOOD").exists()


def test_an_unknown_ticker_is_not_asked_again_while_remembered(live, fake_av, settings):
    fake_av.unknown("GONE")
    watch(settings, "GONE")
    refresh_prices()
    summary = refresh_prices()
    assert fake_av.count(DAILY, "GONE") == 1
    assert summary.failed == {"GONE": "unknown ticker"}


def test_it_logs_one_summary_line(live, fake_av, portfolio, settings, caplog):
    hold(portfolio, "HLDA")
    watch(settings, "FRSH")
    fresh("FRSH")
    with caplog.at_level(logging.INFO, logger="marketdata.refresh"):
        refresh_prices()
    lines = [r.getMessage() for r in caplog.records if r.name == "marketdata.refresh"]
    assert lines == [
        "run=scheduled refreshed=1 skipped_fresh=1 failed=0 deferred=0 quota_left_day=999"
    ]


def test_the_last_summary_is_kept_for_the_status_page(live, fake_av, settings):
    watch(settings, "WCHA")
    summary = refresh_prices()
    assert cache.get(LAST_REFRESH_KEY) == summary


def test_offline_it_says_no_provider_is_configured_and_does_nothing(settings, portfolio):
    hold(portfolio, "HLDA")
    settings.ALPHA_VANTAGE_API_KEY = ""
    summary = refresh_prices()
    assert summary.note == NO_PROVIDER
    assert summary.refreshed == summary.skipped_fresh == summary.deferred == ()
    assert not PriceHistory.objects.exists()


# --- manage.py refresh_prices -----------------------------------------------------------------
def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("refresh_prices", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_runs_the_same_job_and_prints_its_summary(live, fake_av, portfolio, settings):
    hold(portfolio, "HLDA")
    watch(settings, "WCHA")
    out, _ = run()
    assert asked(fake_av) == ["HLDA", "WCHA"]
    assert "HLDA: 100 bars inserted" in out
    assert out.rstrip().splitlines()[-1] == (
        "refreshed=2 skipped_fresh=0 failed=0 deferred=0 quota_left_day=998"
    )


def test_the_command_exits_non_zero_when_a_ticker_failed(live, fake_av, settings):
    fake_av.unknown("GONE")
    watch(settings, "GONE", "GOOD")
    with pytest.raises(CommandError, match="1 tickers failed"):
        run()
    assert PriceHistory.objects.filter(ticker="GOOD").exists()


def test_the_command_lists_what_the_quota_deferred_and_still_succeeds(live, fake_av, settings):
    quota(settings, per_day=2, interactive_reserve=1)
    watch(settings, "WCHA", "WCHB", "WCHC")
    out, _ = run()
    assert "Deferred (the day's scheduled share of the quota is spent): WCHB WCHC" in out
    assert SUMMARY.search(out)


def test_the_command_offline_says_no_provider_and_exits_zero(settings, fake_av):
    settings.ALPHA_VANTAGE_API_KEY = ""
    out, _ = run()
    assert 'note="no provider configured"' in out
    assert fake_av.count() == 0


# --- splits and dividends: after the prices, at most weekly, from the same share ----------------
def actions_weekly(settings) -> None:
    refresh = dataclasses.replace(settings.PAPERTRADE.refresh, actions_every_days=7)
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, refresh=refresh)


def test_the_scheduled_run_fetches_splits_and_dividends_at_most_weekly(live, fake_av, settings):
    from marketdata.models import ActionsCheck, CorporateAction

    actions_weekly(settings)
    watch(settings, "IBM")  # the fake answers IBM's SPLITS (synthetic) and DIVIDENDS (real)

    summary = refresh_prices()

    assert summary.actions_checked == ("IBM",)
    assert fake_av.count("SPLITS", "IBM") == fake_av.count("DIVIDENDS", "IBM") == 1
    assert CorporateAction.objects.filter(ticker="IBM", kind="SPLIT").count() == 2
    assert CorporateAction.objects.filter(ticker="IBM", kind="DIVIDEND").count() == 102
    refresh_prices()  # the same week: not asked again
    assert fake_av.count("SPLITS") == fake_av.count("DIVIDENDS") == 1
    ActionsCheck.objects.update(checked_at=timezone.now() - timedelta(days=8))
    refresh_prices()
    assert fake_av.count("SPLITS") == fake_av.count("DIVIDENDS") == 2
    assert CorporateAction.objects.count() == 104  # stored again, not twice


def test_splits_and_dividends_wait_while_the_scheduled_share_is_spent(
    live, fake_av, portfolio, settings
):
    # Five calls a day, one kept for people: the refresh may spend four. Two go to the prices,
    # two to the first held ticker's SPLITS and DIVIDENDS; the second ticker's wait.
    quota(settings, per_day=5, interactive_reserve=1)
    actions_weekly(settings)
    hold(portfolio, "HLDA", "HLDB")
    watch(settings)

    summary = refresh_prices()

    assert summary.refreshed == ("HLDA", "HLDB")
    assert summary.actions_checked == ("HLDA",)
    assert "quota is spent" in summary.note
    assert fake_av.count("SPLITS") == fake_av.count("DIVIDENDS") == 1
    assert fake_av.count() == 4
    assert live.get_current_price("PRSN").ticker == "PRSN"  # the reserve is still there


def test_no_splits_or_dividends_are_fetched_when_switched_off(live, fake_av, settings):
    watch(settings, "IBM")  # the live fixture switches them off (actions_every_days = 0)
    refresh_prices()
    assert fake_av.count("SPLITS") == fake_av.count("DIVIDENDS") == 0


def test_a_tickers_splits_are_not_fetched_when_its_dividends_could_not_follow(
    live, fake_av, portfolio, settings
):
    # Six calls a day, two kept for people: four for the refresh. One price, then one ticker's
    # SPLITS and DIVIDENDS; one call is left, not enough for a pair: no lone SPLITS.
    quota(settings, per_day=6, interactive_reserve=2)
    actions_weekly(settings)
    hold(portfolio, "HLDA")
    watch(settings, "WCHA")
    fresh("WCHA")  # its price needs no call
    summary = refresh_prices()
    assert summary.actions_checked == ("HLDA",)
    assert fake_av.count("SPLITS") == fake_av.count("DIVIDENDS") == 1
    assert "quota is spent" in summary.note
