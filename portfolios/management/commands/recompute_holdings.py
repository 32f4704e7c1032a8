from django.core.management.base import BaseCommand, CommandError, CommandParser

from portfolios.models import Portfolio
from portfolios.services import ledger_differences, ledger_repair


class Command(BaseCommand):
    help = (
        "Recompute every portfolio's cash, totals and holdings from its ledger and report any "
        "disagreement with the stored figures. Exits non-zero when one is found, unless --fix."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fix", action="store_true", help="rewrite the stored figures from the ledger"
        )
        parser.add_argument("--portfolio", type=int, help="check only this portfolio id")

    def handle(self, *args, fix: bool, portfolio: int | None, **options) -> None:
        portfolios = Portfolio.objects.order_by("id")
        if portfolio is not None:
            portfolios = portfolios.filter(pk=portfolio)
        checked = disagreeing = 0
        for item in portfolios.iterator():
            checked += 1
            problems = ledger_differences(portfolio=item)
            if not problems:
                continue
            disagreeing += 1
            for problem in problems:
                self.stdout.write(f"portfolio {item.pk} ({item.name}): {problem}")
            if fix:
                ledger_repair(portfolio=item)
                self.stdout.write(f"portfolio {item.pk}: rewritten from the ledger")
        summary = f"{checked} portfolios checked, {disagreeing} disagreed with their ledger"
        if disagreeing and not fix:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary) if not disagreeing else summary)
