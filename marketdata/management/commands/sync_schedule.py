"""``manage.py sync_schedule``: write config.toml's refresh schedule into django-celery-beat.

``migrate`` does the same after every run. Admin edits to the task are kept while the config's
[refresh] cron and timezone are the ones last synced; ``--force`` puts the config's back.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from marketdata.schedule import REFRESH_SCHEDULE_NAME, sync_schedule


class Command(BaseCommand):
    help = "Sync the refresh schedule of config.toml into django-celery-beat (by task name)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Overwrite admin edits with the config's schedule even if it did not change.",
        )

    def handle(self, *args, force: bool, **options) -> None:
        from django.conf import settings

        refresh = settings.PAPERTRADE.refresh
        result = sync_schedule(force=force)
        if result == "unchanged":
            self.stdout.write(
                f"{REFRESH_SCHEDULE_NAME!r}: unchanged (config.toml's [refresh] is the one last "
                "synced; edits made in the admin are kept)."
            )
        else:
            self.stdout.write(
                f'{REFRESH_SCHEDULE_NAME!r}: {result} (cron "{refresh.cron}", {refresh.timezone}).'
            )
