from django.apps import AppConfig


class PortfoliosConfig(AppConfig):
    name = "portfolios"

    def ready(self) -> None:
        from marketdata.port import market_data_stored

        market_data_stored.connect(
            _apply_corporate_actions, dispatch_uid="portfolios.apply_corporate_actions"
        )


def _apply_corporate_actions(sender, tickers=(), **kwargs) -> None:
    """New bars or actions were stored (a refresh, an import, a fetch): the splits and dividends
    they bring reach the positions now, not at the next scheduled run."""
    from portfolios.services import apply_corporate_actions

    apply_corporate_actions(tickers=tickers)
