"""``manage.py load_demo_prices``: make the stored demo prices the bundled set in ``data/prices/``,
with its splits and dividends (``data/corporate_actions.csv``).

Loads every file there (idempotent: a rerun changes nothing) and removes the bars of earlier
bundled sets, so a database set up with an older demo moves to the current one cleanly instead
of mixing two windows (an AAPL history with a twenty-month gap, an IBM frozen in 2023). Only
imported bars inside the exact range of an earlier bundled file are removed: bars fetched from
the provider, or imported from any other file, stay.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from marketdata.actions import import_action_file
from marketdata.importing import ImportResult, PriceFileError, import_price_files
from marketdata.models import PriceHistory
from marketdata.port import Source, day_start
from marketdata.price_cache import forget_current_prices

# (ticker, first session, last session) of each file an earlier release bundled as demo data.
RETIRED_DEMO_FILES = (
    ("AAPL", date(1999, 11, 1), date(2023, 11, 10)),
    ("IBM", date(2023, 6, 22), date(2023, 11, 10)),
)


def demo_files():
    return sorted((settings.BASE_DIR / "data" / "prices").glob("*.csv"))


def retire_earlier_demo_sets() -> int:
    """Delete the imported bars of the earlier bundled sets; how many were deleted."""
    removed = 0
    tickers = []
    with transaction.atomic():
        for ticker, first, last in RETIRED_DEMO_FILES:
            count, _ = PriceHistory.objects.filter(
                ticker=ticker,
                source=Source.IMPORT,
                timestamp__gte=day_start(first),
                timestamp__lt=day_start(last + timedelta(days=1)),
            ).delete()
            if count:
                removed += count
                tickers.append(ticker)
        if tickers:
            transaction.on_commit(lambda: forget_current_prices(tickers))
    return removed


class Command(BaseCommand):
    help = "Load the bundled demo prices (data/prices/) and retire earlier bundled sets."
    requires_system_checks = []

    def handle(self, *args, **options) -> None:
        paths = demo_files()
        if not paths:
            raise CommandError("No demo price files in data/prices/.")
        removed = retire_earlier_demo_sets()
        if removed:
            self.stdout.write(f"Removed {removed:,} bars of an earlier demo set (2023).")
        results: list[ImportResult] = []
        for outcome in import_price_files(paths):
            if isinstance(outcome, PriceFileError):
                for line in outcome.lines():
                    self.stderr.write(line)
                raise CommandError(f"{outcome.path}: the demo prices could not be loaded.")
            results.append(outcome)
        actions = import_action_file(settings.BASE_DIR / "data" / "corporate_actions.csv")
        inserted = sum(r.inserted for r in results)
        updated = sum(r.updated for r in results)
        tickers = ", ".join(sorted(r.ticker for r in results))
        self.stdout.write(
            f"Demo prices: {len(results)} tickers ({tickers}); "
            f"{inserted:,} bars inserted, {updated:,} updated; corporate actions: "
            f"{actions.inserted} inserted, {actions.updated} updated."
        )
