"""``manage.py check_orders``: check every open limit and stop order against the stored bars
now (``portfolios.orders.check_orders``), as storing a bar does, and expire the live orders
whose last session passed without one. Safe to run again and again: an order closes once."""

from django.core.management.base import BaseCommand, CommandParser

from portfolios.orders import check_orders, check_overdue


class Command(BaseCommand):
    help = "Fill, expire or reject open orders by the stored bars."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tickers", nargs="*", metavar="TICKER", help="only these tickers")

    def handle(self, *args, tickers: list[str], **options) -> None:
        wanted = [t.strip().upper() for t in tickers] or None
        self.stdout.write(f"{check_orders(tickers=wanted)}.")
        overdue = check_overdue()
        if overdue.expired:
            self.stdout.write(f"{overdue.expired} orders expired without a bar of their session.")
