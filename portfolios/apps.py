from django.apps import AppConfig


class PortfoliosConfig(AppConfig):
    name = "portfolios"

    def ready(self) -> None:
        from marketdata.port import market_data_stored

        market_data_stored.connect(
            _apply_corporate_actions, dispatch_uid="portfolios.apply_corporate_actions"
        )
        market_data_stored.connect(_check_orders, dispatch_uid="portfolios.check_orders")


def _apply_corporate_actions(sender, tickers=(), **kwargs) -> None:
    """New bars or actions were stored (a refresh, an import, a fetch): the splits and dividends
    they bring reach the positions now, not at the next scheduled run."""
    from portfolios.services import apply_corporate_actions

    apply_corporate_actions(tickers=tickers)


def _check_orders(sender, tickers=(), **kwargs) -> None:
    """New bars were stored: the open orders of their tickers meet them now (after the splits
    and dividends they bring). A failure here must not fail the fetch that stored them: it is
    logged, and the next bar stored checks the orders again."""
    import logging

    from portfolios.orders import check_orders, check_overdue

    try:
        checked = check_orders(tickers=tickers)
        check_overdue()
    except Exception:
        logging.getLogger("portfolios.orders").exception("checking open orders failed")
        return
    if checked.filled or checked.expired or checked.rejected or checked.cancelled:
        logging.getLogger("portfolios.orders").info("orders of %s: %s", ",".join(tickers), checked)
