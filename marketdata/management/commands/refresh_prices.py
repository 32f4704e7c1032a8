"""``manage.py refresh_prices``: the scheduled refresh, once, in the foreground.

The same job as the Celery beat task (``marketdata.refresh.refresh_prices``): every stale held
ticker and the watchlist, within the quota's scheduled share. Prints a line per ticker and the
same summary line the job logs; exits non-zero when a ticker failed. Deferred tickers (the
day's share spent) are not a failure: the next run picks them up. ``--plan`` prints the refresh
plan (``marketdata.plan``) instead: one line per ticker, ``TICKER  priority  run N  YYYY-MM-DD``,
then the summary; it makes no upstream call.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from marketdata.management.sigterm import sigterm_interrupts
from marketdata.refresh import refresh_prices


class Command(BaseCommand):
    help = "Refresh the prices of every held ticker and the watchlist now (the scheduled job)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--plan",
            action="store_true",
            help="Print the refresh plan (which run serves each ticker) and make no call.",
        )

    def handle(self, *args, plan: bool = False, **options) -> None:
        if plan:
            from marketdata.plan import refresh_plan

            found = refresh_plan()
            for ticker in found.tickers:
                self.stdout.write(ticker.line())
            self.stdout.write(found.summary())
            return
        with sigterm_interrupts():  # the fetch loop stops cleanly, reporting what it did not do
            summary = refresh_prices(log=self.stdout.write)
        for ticker, why in summary.failed.items():
            self.stderr.write(f"{ticker}: failed: {why}")
        if summary.deferred:
            self.stdout.write(
                f"Deferred (the day's scheduled share of the quota is spent): "
                f"{' '.join(summary.deferred)}"
            )
        self.stdout.write(summary.line())
        if summary.failed:
            raise CommandError(f"{len(summary.failed)} tickers failed; see above.")
