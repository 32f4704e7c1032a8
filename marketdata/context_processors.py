from django.http import HttpRequest

from marketdata.tiers import demo_as_of
from marketdata.upstream_status import upstream_status
from marketdata.wiring import is_live


def market_data(request: HttpRequest) -> dict:
    """Tell every page whether its prices are live or demo data, and whether live prices are
    held back right now (quota spent, provider failing). Lazy: only pages that show it pay."""
    if is_live():
        return {"market_data_live": True, "upstream_status": upstream_status}
    return {"market_data_live": False, "demo_as_of": demo_as_of}
