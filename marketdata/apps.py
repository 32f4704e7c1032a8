from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MarketdataConfig(AppConfig):
    name = "marketdata"
    verbose_name = "Market data"

    def ready(self) -> None:
        # After every migrate, the refresh schedule of config.toml is synced into
        # django-celery-beat (marketdata.schedule): admin edits survive until the config changes.
        post_migrate.connect(_sync_schedule, sender=self, dispatch_uid="marketdata.sync_schedule")


def _sync_schedule(sender, *, using, apps=None, verbosity=1, stdout=None, **kwargs) -> None:
    # ``apps`` is the migrated state after migrate; flush (tests) sends no state: all is there.
    try:
        if apps is not None:
            apps.get_model("django_celery_beat", "PeriodicTask")
    except LookupError:
        return  # django_celery_beat's tables are not migrated (yet)
    from marketdata.schedule import REFRESH_SCHEDULE_NAME, sync_schedule

    result = sync_schedule(using=using)
    if verbosity >= 1 and result != "unchanged" and stdout is not None:
        stdout.write(f"  Beat schedule {REFRESH_SCHEDULE_NAME!r} {result} from config.toml")
