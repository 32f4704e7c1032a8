"""The Celery tasks and the beat schedule they run on: config.toml's [refresh] synced into
django-celery-beat by name, with the admin's edits kept until the config changes."""

import dataclasses
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from marketdata.models import PriceHistory
from marketdata.schedule import REFRESH_SCHEDULE_NAME, sync_schedule
from marketdata.tasks import refresh_prices_task, refresh_tickers_task
from papertrade.celery import app

pytestmark = pytest.mark.django_db
DAILY = "TIME_SERIES_DAILY"


def schedule() -> PeriodicTask:
    return PeriodicTask.objects.select_related("crontab").get(name=REFRESH_SCHEDULE_NAME)


def cron_of(task: PeriodicTask) -> tuple[str, str]:
    c = task.crontab
    fields = (c.minute, c.hour, c.day_of_month, c.month_of_year, c.day_of_week)
    return " ".join(fields), str(c.timezone)


def configure(settings, *, cron: str, tz: str = "America/New_York") -> None:
    refresh = dataclasses.replace(settings.PAPERTRADE.refresh, cron=cron, timezone=tz)
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, refresh=refresh)


# --- the schedule -----------------------------------------------------------------------------
def test_after_migrate_the_beat_schedule_is_the_configs(settings):
    PeriodicTask.objects.filter(name=REFRESH_SCHEDULE_NAME).delete()
    call_command("migrate", verbosity=0)
    task = schedule()
    assert task.task == "marketdata.refresh_prices"
    assert task.enabled
    assert cron_of(task) == (settings.PAPERTRADE.refresh.cron, settings.PAPERTRADE.refresh.timezone)
    assert cron_of(task) == ("30 18 * * 1-5", "America/New_York")  # config.toml's default


def test_a_config_change_updates_the_same_task_in_place(settings):
    before = schedule()
    configure(settings, cron="15 19 * * 1-5", tz="UTC")
    assert sync_schedule() == "updated"
    after = schedule()
    assert after.pk == before.pk  # never deleted and recreated
    assert cron_of(after) == ("15 19 * * 1-5", "UTC")


def test_an_admin_edit_survives_a_resync_until_the_config_changes(settings):
    task = schedule()
    # The operator moves the job to 20:45 in the admin and turns it off for a while.
    task.crontab = CrontabSchedule.objects.create(
        minute="45", hour="20", day_of_week="1-5", timezone="America/New_York"
    )
    task.enabled = False
    task.save()

    assert sync_schedule() == "unchanged"
    call_command("migrate", verbosity=0)
    assert cron_of(schedule()) == ("45 20 * * 1-5", "America/New_York")

    configure(settings, cron="0 19 * * 1-5")
    assert sync_schedule() == "updated"
    task = schedule()
    assert cron_of(task) == ("0 19 * * 1-5", "America/New_York")
    assert task.enabled is False  # config says nothing about it: the admin's choice stays


def test_the_command_syncs_and_force_puts_the_config_back():
    task = schedule()
    task.crontab = CrontabSchedule.objects.create(minute="0", hour="3")
    task.save()
    out = StringIO()
    call_command("sync_schedule", stdout=out)
    assert "unchanged" in out.getvalue()
    call_command("sync_schedule", "--force", stdout=out)
    assert "updated" in out.getvalue()
    assert cron_of(schedule()) == ("30 18 * * 1-5", "America/New_York")


def test_a_cron_that_is_no_crontab_names_the_config_key(settings):
    configure(settings, cron="99 18 * * 1-5")
    with pytest.raises(ImproperlyConfigured, match=r"config\.toml: refresh\.cron '99 18"):
        sync_schedule()


# --- the tasks --------------------------------------------------------------------------------
def test_the_tasks_are_registered_under_stable_names():
    app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    for name in ("marketdata.refresh_prices", "marketdata.refresh_tickers"):
        assert app.tasks[name].acks_late
    assert schedule().task in app.tasks  # beat sends a task the worker knows


def test_the_daily_task_runs_the_refresh(live, fake_av, settings):
    refresh = dataclasses.replace(settings.PAPERTRADE.refresh, watchlist=("WCHA",))
    settings.PAPERTRADE = dataclasses.replace(settings.PAPERTRADE, refresh=refresh)
    result = refresh_prices_task.apply().get()
    assert result.startswith("refreshed=1 ")
    assert fake_av.count(DAILY, "WCHA") == 1


def test_the_tickers_task_refreshes_the_stale_ones_it_is_given(live, fake_av, aapl):
    result = refresh_tickers_task.apply(args=[["aapl", "nvda", "not a ticker"]]).get()
    assert fake_av.count(DAILY, "AAPL") == 1
    assert fake_av.count(DAILY, "NVDA") == 1
    assert "failed=1" in result  # the malformed one, without a call
    assert PriceHistory.objects.filter(ticker="NVDA").exists()
    refresh_tickers_task.apply(args=[["NVDA"]])
    assert fake_av.count(DAILY, "NVDA") == 1  # fresh now: not asked again
