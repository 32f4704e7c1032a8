"""``manage.py import_prices``: load daily bars into ``PriceHistory``.

- ``--from-file PATH [PATH ...]`` loads CSV files, no network. Each file is loaded whole or not
  at all, on its own; a bad file does not stop the others. Small files are committed a group at
  a time (each still all or nothing), which makes a thousand of them several times faster.
- ``--actions PATH [PATH ...]`` loads splits and dividends (``marketdata.actions``).
- ``TICKER [TICKER ...]`` and ``--watchlist`` fetch from the provider through the shared quota:
  one call per ticker, waiting politely for the per-second spacing, and stopping cleanly with a
  summary that says how to resume when the day's quota is spent.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from marketdata.importing import ImportResult, PriceFileError, import_price_files
from marketdata.management.sigterm import sigterm_interrupts
from marketdata.port import InvalidTicker, normalize_ticker


class Command(BaseCommand):
    help = "Load daily price bars from CSV files (date,open,high,low,close,volume)."
    # A loader run again and again (by hand, from cron): the system checks (a quarter of a
    # second at every start) belong to deploys, `manage.py check` and `migrate`.
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "tickers",
            nargs="*",
            metavar="TICKER",
            help="Tickers to fetch from the provider, through the quota.",
        )
        parser.add_argument(
            "--watchlist",
            action="store_true",
            help="Fetch the watchlist of config.toml ([refresh] watchlist).",
        )
        parser.add_argument(
            "--from-file",
            nargs="+",
            type=Path,
            metavar="PATH",
            dest="paths",
            help="CSV files to load: ours (date,...) or Alpha Vantage's (timestamp,...).",
        )
        parser.add_argument(
            "--actions",
            nargs="+",
            type=Path,
            metavar="PATH",
            dest="action_paths",
            help="CSV files of splits and dividends: ticker,kind,date,value[,pay_date].",
        )
        parser.add_argument(
            "--ticker",
            help="The ticker of every file given (default: each file's name, AAPL.csv → AAPL).",
        )

    def handle(
        self,
        *args,
        tickers: list[str],
        paths: list[Path] | None,
        ticker: str | None,
        watchlist: bool,
        action_paths: list[Path] | None = None,
        **options,
    ) -> None:
        if action_paths:
            if tickers or watchlist or paths:
                raise CommandError("Give --actions files alone, not with tickers or prices.")
            self._import_actions(action_paths)
            return
        if paths and (tickers or watchlist):
            raise CommandError("Give tickers (or --watchlist) or --from-file, not both.")
        if not paths:
            if not tickers and not watchlist:
                raise CommandError(
                    "Give tickers to fetch, --watchlist, or files: --from-file PATH [PATH ...]"
                )
            self._fetch(tickers, watchlist=watchlist)
            return
        if ticker is not None:
            try:
                ticker = normalize_ticker(ticker)
            except InvalidTicker as exc:
                raise CommandError(f"--ticker {ticker!r}: {exc}") from None

        results: list[ImportResult] = []
        failed = errors = 0
        interrupted = False
        try:
            with (
                sigterm_interrupts(),
                tqdm(
                    total=len(paths), unit=" files", leave=False, disable=not self.stdout.isatty()
                ) as bar,
            ):
                for outcome in import_price_files(paths, ticker=ticker):
                    if isinstance(outcome, PriceFileError):
                        failed += 1
                        errors += outcome.count
                        for line in outcome.lines():
                            self.stderr.write(line)
                    else:
                        results.append(outcome)
                        self.stdout.write(
                            f"{outcome.path} → {outcome.ticker}: {outcome.inserted:,} inserted, "
                            f"{outcome.updated:,} updated, {outcome.unchanged:,} unchanged."
                        )
                    bar.update(1)
        except KeyboardInterrupt:
            interrupted = True

        self._summarize(results, total=len(paths), errors=errors)
        if interrupted:
            rest = len(paths) - len(results) - failed
            raise CommandError(
                f"Interrupted: {_files(rest)} not loaded (whatever of them was being written "
                "was rolled back). Loading a file again is safe: run the same command to finish."
            )
        if failed:
            raise CommandError(f"{failed} of {_files(len(paths))} could not be loaded; see above.")

    def _import_actions(self, paths: list[Path]) -> None:
        from marketdata.actions import import_action_file

        failed = 0
        for path in paths:
            try:
                stored = import_action_file(path)
            except PriceFileError as exc:
                failed += 1
                for line in exc.lines():
                    self.stderr.write(line)
                continue
            self.stdout.write(
                f"{path}: {stored.inserted:,} actions inserted, {stored.updated:,} updated, "
                f"{stored.unchanged:,} unchanged."
            )
        if failed:
            raise CommandError(f"{failed} of {_files(len(paths))} could not be loaded; see above.")

    def _fetch(self, tickers: list[str], *, watchlist: bool) -> None:
        from django.conf import settings

        from marketdata.quota import Priority
        from marketdata.refresh import fetch_tickers
        from marketdata.wiring import get_upstream

        upstream = get_upstream()
        if upstream is None:
            raise CommandError(
                "No provider is configured: set ALPHA_VANTAGE_API_KEY to fetch prices, or load "
                "files with --from-file PATH."
            )
        wanted: list[str] = []
        for raw in tickers:
            try:
                wanted.append(normalize_ticker(raw))
            except InvalidTicker as exc:
                raise CommandError(f"{raw!r}: {exc}") from None
        priority = Priority.BACKFILL
        if watchlist:
            wanted += list(settings.PAPERTRADE.refresh.watchlist)
            priority = Priority.WATCHLIST if not tickers else Priority.BACKFILL
        wanted = list(dict.fromkeys(wanted))

        with (
            sigterm_interrupts(),
            tqdm(
                total=len(wanted), unit=" tickers", leave=False, disable=not self.stdout.isatty()
            ) as bar,
        ):
            report = fetch_tickers(
                upstream=upstream,
                tickers=wanted,
                priority=priority,
                progress=bar,
                log=self.stdout.write,
            )
        self.stdout.write(report.summary())
        if report.remaining:
            raise CommandError(
                f"Stopped: {report.stopped_because}. Resume with: python manage.py import_prices "
                + " ".join(report.remaining)
            )
        if report.failed:
            raise CommandError(f"{len(report.failed)} of {len(wanted)} tickers failed; see above.")

    def _summarize(self, results: list[ImportResult], *, total: int, errors: int) -> None:
        files = f"{len(results)} of {total} files" if len(results) != total else _files(total)
        inserted = sum(r.inserted for r in results)
        updated = sum(r.updated for r in results)
        unchanged = sum(r.unchanged for r in results)
        self.stdout.write(
            f"Imported {files}: {inserted:,} rows inserted, {updated:,} updated, "
            f"{unchanged:,} unchanged, {errors:,} {'error' if errors == 1 else 'errors'}."
        )


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"
