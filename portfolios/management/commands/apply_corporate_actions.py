"""``manage.py apply_corporate_actions``: append the split and dividend entries the recorded
actions owe positions (``portfolios.services.apply_corporate_actions``). Safe to run again and
again: an action reaches a portfolio once."""

from django.core.management.base import BaseCommand, CommandParser

from portfolios.services import apply_corporate_actions


class Command(BaseCommand):
    help = "Apply recorded splits and dividends to the portfolios that held the ticker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tickers", nargs="*", metavar="TICKER", help="only these tickers")

    def handle(self, *args, tickers: list[str], **options) -> None:
        wanted = [t.strip().upper() for t in tickers] or None
        self.stdout.write(f"{apply_corporate_actions(tickers=wanted)}.")
