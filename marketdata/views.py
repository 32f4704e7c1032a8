from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from marketdata.port import get_price_port
from marketdata.symbols import clean_query


@require_GET
def symbol_suggest(request: HttpRequest) -> HttpResponse:
    """Autocomplete options for a ticker field: a <datalist>'s <option>s, best first.

    Local matches (bundled list, stored tickers) cost nothing; the provider is asked only when
    nothing local matches, through the quota, and its answers are cached per query.
    """
    query = clean_query(request.GET.get("q") or request.GET.get("ticker") or "")
    matches = get_price_port().search_symbols(query) if query else []
    return render(request, "marketdata/partials/_symbol_options.html", {"matches": matches})
