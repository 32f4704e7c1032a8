"""``manage.py export_portfolio ID``: write a portfolio's transactions, holdings and value over
time as CSV files (the same rows as the page's downloads) into a folder (default: here)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portfolios import export
from portfolios.models import Portfolio


class Command(BaseCommand):
    help = "Write a portfolio's transactions, holdings and value over time as CSV files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("portfolio", type=int, metavar="ID")
        parser.add_argument("--dir", type=Path, default=Path("."), help="where to write them")

    def handle(self, *args, portfolio: int, dir: Path, **options) -> None:  # noqa: A002
        found = Portfolio.objects.filter(pk=portfolio).first()
        if found is None:
            raise CommandError(f"No portfolio with id {portfolio}.")
        if not dir.is_dir():
            raise CommandError(f"{dir} is not a folder.")
        for kind in export.KINDS:
            path = dir / export.filename(found, kind)
            with path.open("w", encoding="utf-8", newline="") as out:
                export.write_csv(export.ROWS[kind](found), out)
            self.stdout.write(str(path))
