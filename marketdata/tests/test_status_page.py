"""The operator's market-data status page: quota, last refresh, cache hit ratio, per-ticker
freshness and coverage gaps, for staff only."""

import dataclasses
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import on_redis
from marketdata.port import session_date
from marketdata.refresh import refresh_prices
from marketdata.tests.factories import store_bars
from marketdata.tiers import TieredMarketData
from marketdata.trading_calendar import latest_due_close
from portfolios.models import Holding

pytestmark = pytest.mark.django_db
URL = "/market-data/status/"


@pytest.fixture
def staff_client(client, django_user_model):
    ops = django_user_model.objects.create_user(username="ops", password="x" * 12, is_staff=True)
    client.force_login(ops)
    return client


def watch(settings, *tickers: str) -> None:
    refresh = dataclasses.replace(settings.PAPERTRADE.refresh, watchlist=tickers)
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, refresh=refresh)


def row(body: str, ticker: str, table: str = "ticker") -> str:
    """The text of one table row, tags stripped, spaces squeezed."""
    match = re.search(rf'<tr data-{table}="{ticker}">(.*?)</tr>', body, re.S)
    assert match, f"no row for {ticker}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def section(body: str, name: str) -> str:
    match = re.search(rf'<section class="card" id="{name}">(.*?)</section>', body, re.S)
    assert match, f"no section {name}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def test_people_who_are_not_staff_get_a_404(auth_client):
    assert auth_client.get(URL).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_only_staff_see_the_link_in_the_header(staff_client, user):
    assert f'href="{URL}"' in staff_client.get("/").content.decode()
    someone = Client()
    someone.force_login(user)
    assert f'href="{URL}"' not in someone.get("/").content.decode()


def test_it_shows_the_quota_and_the_last_refresh(staff_client, live, fake_av, settings):
    watch(settings, "WCHA", "WCHB")
    refresh_prices()

    body = staff_client.get(URL).content.decode()

    quota = section(body, "quota")
    assert "This minute 2 998 1000" in quota  # used, left, limit (the live fixture's roomy quota)
    assert "Today (UTC) 2 998 1000" in quota
    assert "Today, scheduled share — 993 995" in quota  # five calls a day kept for people
    last = section(body, "last-refresh")
    assert "refreshed=2 skipped_fresh=0 failed=0 deferred=0 quota_left_day=998" in last
    assert "Refreshed: WCHA, WCHB" in last


def test_before_any_refresh_it_says_so(staff_client):
    assert "No scheduled refresh has run" in staff_client.get(URL).content.decode()


def test_it_shows_each_tracked_tickers_freshness(staff_client, settings, portfolio):
    Holding.objects.create(
        portfolio=portfolio, ticker="HELD", quantity=Decimal("1"), cost_basis=Decimal("1")
    )
    watch(settings, "AAPL", "FRSH", "NONE")
    store_bars("HELD", [(date(2023, 11, 10), "10.0000")])
    store_bars("AAPL", [(date(2023, 11, 10), "186.4000")])
    due = session_date(latest_due_close(timezone.now(), timedelta(minutes=60)))
    store_bars("FRSH", [(due, "10.0000")])

    body = staff_client.get(URL).content.decode()

    expected = due.strftime("%Y-%m-%d")
    assert row(body, "HELD") == f"HELD held Fri 2023-11-10 {due:%a} {expected} Imported stale"
    assert (
        row(body, "FRSH")
        == f"FRSH watchlist {due:%a} {expected} {due:%a} {expected} Imported fresh"
    )
    assert row(body, "NONE") == f"NONE watchlist none stored {due:%a} {expected} — missing"
    assert "2 of 4 held and watchlist tickers are stale; 1 has no stored prices at all" in body
    assert "without an API key nothing can fetch them" in body


def test_it_lists_the_trading_days_missing_inside_a_stored_range(staff_client, settings):
    watch(settings, "GAPS", "FULL")
    # Thanksgiving (Thu 23 Nov 2023) is no session; Wednesday the 8th is missing.
    store_bars(
        "GAPS",
        [(date(2023, 11, d), "10.0000") for d in (6, 7, 9, 10, 22, 24)],
    )
    store_bars("FULL", [(date(2023, 11, d), "10.0000") for d in (21, 22, 24)])

    body = staff_client.get(URL).content.decode()

    gaps = row(body, "GAPS", table="gap")
    assert gaps.startswith("GAPS 2023-11-06 – 2023-11-24 6 8 2023-11-08, 2023-11-13, 2023-11-14")
    assert "2023-11-23" not in gaps
    assert "FULL" not in section(body, "gaps")


def test_it_shows_the_cache_hit_ratio_where_it_is_counted(staff_client, aapl, ibm):
    port = TieredMarketData()
    port.get_current_prices(["AAPL", "IBM"])  # two misses, read from the database
    port.get_current_prices(["AAPL", "IBM"])  # two hits
    port.get_current_prices(["AAPL"])  # one more hit

    cache_section = section(staff_client.get(URL).content.decode(), "cache")

    if on_redis():
        assert "60% of current-price reads answered by the cache: 3 hits, 2 misses" in (
            cache_section
        )
    else:
        assert "Not measured on the embedded database cache" in cache_section


def test_offline_it_says_no_provider_is_configured_and_shows_no_quota(staff_client, settings):
    settings.ALPHA_VANTAGE_API_KEY = ""
    body = staff_client.get(URL).content.decode()
    assert "No provider configured" in section(body, "provider")
    quota = section(body, "quota")
    assert "there is no quota to spend" in quota and "This minute" not in quota


def test_the_page_costs_the_same_queries_for_2_or_20_tickers(
    staff_client, settings, django_assert_max_num_queries
):
    tickers = [f"T{i}X" for i in range(20)]
    for t in tickers:  # each with a gap (Thursday the 9th), so every query of the page runs
        store_bars(t, [(date(2023, 11, 8), "1.0000"), (date(2023, 11, 10), "1.0000")])

    def queries_for(n: int) -> int:
        watch(settings, *tickers[:n])
        staff_client.get(URL)  # warm what every page warms (session, demo banner)
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get(URL).status_code == 200
        # On the embedded default the cache is a table: its reads are cache round trips.
        return len([q for q in captured.captured_queries if "papertrade_cache" not in q["sql"]])

    assert queries_for(2) == queries_for(20) <= 12
