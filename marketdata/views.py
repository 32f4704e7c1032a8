from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from marketdata.port import clean_query, get_price_port
from marketdata.status import market_data_status


@require_GET
def symbol_suggest(request: HttpRequest) -> HttpResponse:
    """Autocomplete options for a ticker field: a <datalist>'s <option>s, best first.

    Local matches (bundled list, stored tickers) cost nothing; the provider is asked only when
    nothing local matches, through the quota, and its answers are cached per query.
    """
    query = clean_query(request.GET.get("q") or request.GET.get("ticker") or "")
    matches = get_price_port().search_symbols(query) if query else []
    return render(request, "marketdata/partials/_symbol_options.html", {"matches": matches})


@require_GET
def status(request: HttpRequest) -> HttpResponse:
    """The operator's view of market data: quota, last refresh, cache hit ratio, freshness and
    coverage gaps. Staff only; anyone else gets a 404 (the page's existence is not advertised)."""
    if not request.user.is_staff:
        raise Http404
    return render(request, "marketdata/status.html", {"status": market_data_status()})
