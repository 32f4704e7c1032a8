"""Celery tasks: thin doors to ``marketdata.refresh`` (STYLE rule 12).

Both are idempotent (bars are upserted; fresh tickers are skipped), so ``acks_late`` is safe:
a task re-delivered after a worker died re-checks freshness and fetches only what is missing.
Time limits and JSON serialization are in settings.
"""

from celery import shared_task

from marketdata.refresh import refresh_prices, refresh_tickers


@shared_task(name="marketdata.refresh_prices", acks_late=True)
def refresh_prices_task() -> str:
    """The daily job after the US close (beat: "Refresh prices after the US close")."""
    return refresh_prices().line()


@shared_task(name="marketdata.refresh_tickers", acks_late=True)
def refresh_tickers_task(tickers: list[str]) -> str:
    """The admin's "Refresh selected tickers" action."""
    return refresh_tickers(tickers=tickers).line()
