"""Celery tasks: thin doors to ``marketdata.refresh`` and the tiers (STYLE rule 12).

All are idempotent (bars are upserted; fresh tickers are skipped), so ``acks_late`` is safe:
a task re-delivered after a worker died re-checks freshness and fetches only what is missing.
Time limits and JSON serialization are in settings.
"""

from celery import shared_task

from marketdata.refresh import refresh_prices, refresh_tickers
from marketdata.wiring import FETCH_TASK, get_market_data


@shared_task(name=FETCH_TASK, acks_late=True)
def fetch_price_task(ticker: str) -> str:
    """A person's request for a price that is missing or stale (``Upstream.request``)."""
    return get_market_data().fetch_requested(ticker)


@shared_task(name="marketdata.refresh_prices", acks_late=True, bind=True)
def refresh_prices_task(self) -> str:
    """The daily job after the US close (beat: "Refresh prices after the US close"). The task's
    id names its run: redelivered after its worker died, it takes its own run lock back."""
    return refresh_prices(run_id=self.request.id).line()


@shared_task(name="marketdata.refresh_tickers", acks_late=True)
def refresh_tickers_task(tickers: list[str]) -> str:
    """The admin's "Refresh selected tickers" action."""
    return refresh_tickers(tickers=tickers).line()
