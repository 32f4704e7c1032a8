"""import_prices TICKER ... and --watchlist: fetching through the quota from a fake provider."""

import dataclasses
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from marketdata.models import PriceHistory
from marketdata.port import Source

pytestmark = pytest.mark.django_db
DAILY = "TIME_SERIES_DAILY"


def run(*args):
    out = StringIO()
    call_command("import_prices", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_it_fetches_each_ticker_once_and_stores_its_bars(live, fake_av):
    out = run("msft", "NVDA")
    assert fake_av.count(DAILY, "MSFT") == 1
    assert fake_av.count(DAILY, "NVDA") == 1
    assert PriceHistory.objects.filter(ticker="NVDA", source=Source.ALPHA_VANTAGE).count() == 100
    assert "Fetched 2 tickers" in out


def test_it_continues_past_an_unknown_ticker_and_exits_non_zero(live, fake_av):
    fake_av.unknown("NOSUCH")
    with pytest.raises(CommandError, match="1 of 2 tickers failed"):
        run("NOSUCH", "NVDA")
    assert PriceHistory.objects.filter(ticker="NVDA").exists()


def test_it_waits_for_the_spacing_between_calls(live, fake_av, settings):
    spaced = dataclasses.replace(settings.PAPERTRADE.quota, min_seconds_between_calls=0.4)
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, quota=spaced)
    run("AAA", "BBB", "CCC")
    times = fake_av.times
    assert len(times) == 3
    assert all(b - a >= 0.35 for a, b in zip(times, times[1:], strict=False))


def test_it_stops_cleanly_with_a_resumable_summary_when_the_day_is_spent(live, fake_av, settings):
    # Six calls a day, one kept for people: the command (scheduled priority) may spend five.
    tight = dataclasses.replace(
        settings.PAPERTRADE.quota, per_day=6, interactive_reserve=1, min_seconds_between_calls=0
    )
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, quota=tight)
    tickers = [f"T{i}X" for i in range(8)]
    with pytest.raises(CommandError) as excinfo:
        run(*tickers)
    assert fake_av.count() == 5
    message = str(excinfo.value)
    assert "the quota is spent" in message
    assert "Resume with: python manage.py import_prices T5X T6X T7X" in message
    assert set(PriceHistory.objects.values_list("ticker", flat=True).distinct()) == set(tickers[:5])


def test_it_stops_when_the_provider_says_the_day_is_over(live, fake_av):
    fake_av.throttle_after(1)
    with pytest.raises(CommandError, match="Resume with: python manage.py import_prices BBB CCC"):
        run("AAA", "BBB", "CCC")
    assert fake_av.count() == 2  # one good, one refused, and then nothing more


def test_the_watchlist_comes_from_config(live, fake_av, settings):
    refresh = dataclasses.replace(settings.PAPERTRADE.refresh, watchlist=("AAPL", "IBM"))
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, refresh=refresh)
    run("--watchlist")
    assert [r[1] for r in fake_av.requests] == ["AAPL", "IBM"]


def test_files_and_tickers_do_not_mix(live):
    with pytest.raises(CommandError, match="not both"):
        run("AAPL", "--from-file", "data/prices/AAPL.csv")
