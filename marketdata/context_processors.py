from django.http import HttpRequest

from marketdata.services import demo_as_of, is_live


def market_data(request: HttpRequest) -> dict:
    """Tell every page whether its prices are live or demo data (and as of when)."""
    if is_live():
        return {"market_data_live": True}
    return {"market_data_live": False, "demo_as_of": demo_as_of}
