"""``manage.py refresh_prices``: the scheduled refresh, once, in the foreground.

The same job as the Celery beat task (``marketdata.refresh.refresh_prices``): every stale held
ticker and the watchlist, within the quota's scheduled share. Prints a line per ticker and the
same summary line the job logs; exits non-zero when a ticker failed. Deferred tickers (the
day's share spent) are not a failure: the next run picks them up.
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from marketdata.refresh import refresh_prices


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt  # the fetch loop stops cleanly and reports what it did not do


class Command(BaseCommand):
    help = "Refresh the prices of every held ticker and the watchlist now (the scheduled job)."

    def handle(self, *args, **options) -> None:
        on_main_thread = threading.current_thread() is threading.main_thread()
        if on_main_thread:
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            summary = refresh_prices(log=self.stdout.write)
        finally:
            if on_main_thread:
                signal.signal(signal.SIGTERM, previous)
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
