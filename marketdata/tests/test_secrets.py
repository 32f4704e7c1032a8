"""The provider's API key never reaches a page, an error, a log line, the cache or the database
(PRODUCT §3.3, §5), even when the provider repeats it back to us.

Each story configures a recognisable key, makes every answer after the first one echo it, then
walks the app as a staff member would: trades, searches, every page, the admin. Nothing shown,
logged or kept may contain the key.
"""

import contextlib
from datetime import date

import pytest
from django.contrib import admin
from django.urls import NoReverseMatch, reverse

from conftest import PROVIDER_KEY as KEY
from marketdata.testing.fake_alpha_vantage import DAILY_LIMIT_ECHOING_KEY_BODY
from marketdata.tests.factories import store_bars
from marketdata.tests.test_live import everything_in_the_cache, everything_in_the_database

pytestmark = pytest.mark.django_db

ECHOES = {
    "the daily-limit message": DAILY_LIMIT_ECHOING_KEY_BODY,
    "an error message": {"Error Message": "Invalid API call for apikey={apikey}. Please retry."},
    "an information note": {"Information": "The API key {apikey} is not valid for this call."},
    "an outage page": "<html><body>Application Error (apikey={apikey})</body></html>",
}


def _admin_pages(client) -> list[str]:
    """The admin's index, every registered model's list, and the first row's change page."""
    urls = ["/admin/"]
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            urls.append(reverse("admin:{}_{}_change".format(*info), args=[first.pk]))
    return urls


@pytest.mark.parametrize("echo", ECHOES.values(), ids=ECHOES.keys())
def test_the_key_is_nowhere_when_the_provider_repeats_it(
    live, fake_av, client, django_user_model, password, caplog, capfd, echo
):
    caplog.set_level("DEBUG")
    django_user_model.objects.create_superuser("root", "root@example.com", password)
    store_bars("OLDCO", [(date(2023, 11, 9), "9.0000"), (date(2023, 11, 10), "10.0000")])
    fake_av.throttle_after(1, echo)  # the first call answers; every later one echoes the key
    seen = []

    def visit(method, url, data=None, **headers):
        response = getattr(client, method)(url, data or {}, **headers)
        assert response.status_code < 500, (url, response.status_code)
        seen.append((url, response))
        return response

    assert visit("post", "/accounts/login/", {"username": "root", "password": password})[
        "Location"
    ].startswith("/")
    created = visit("post", "/portfolios/", {"name": "Main", "opening_deposit": "5000"})
    pk = created["Location"].rstrip("/").rsplit("/", 1)[-1]
    visit("get", "/stocks/NEWCO/")  # the one call that answers
    for ticker in ("NEWCO", "FRESHCO", "OLDCO"):
        trade = {"side": "BUY", "ticker": ticker, "quantity": "1"}
        visit("post", f"/portfolios/{pk}/trade/", trade)
        visit("post", f"/portfolios/{pk}/trade/", trade, HTTP_HX_REQUEST="true")
        visit("get", f"/stocks/{ticker}/")
        visit("get", f"/portfolios/{pk}/trade/preview/", {"ticker": ticker, "quantity": "2"})
    visit("get", "/stocks/FRESHCO/", {"range": "1Y"})
    for query in ("zzqx", "FRESHCO", "newco"):
        visit("get", "/stocks/", {"q": query})
        visit("get", "/symbols/suggest/", {"q": query}, HTTP_HX_REQUEST="true")
    for url in ("/", f"/portfolios/{pk}/", f"/portfolios/{pk}/delete/", "/healthz"):
        visit("get", url)
    visit("get", f"/portfolios/{pk}/live/", HTTP_HX_REQUEST="true")
    visit("get", f"/portfolios/{pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="transactions")
    with contextlib.suppress(NoReverseMatch):  # the staff status page, where there is one
        visit("get", reverse("market_data_status"))
    for url in _admin_pages(client):
        visit("get", url)

    assert fake_av.requests and {key for _, _, key in fake_av.requests} == {KEY}
    assert fake_av.count() >= 2  # the key really was echoed back at least once
    told = (b"Live prices are", b"No prices are known", b"not a ticker we know")
    assert any(t in r.content for _, r in seen for t in told)  # the pages told of the trouble
    for url, response in seen:
        assert KEY not in response.content.decode(), url
        assert KEY not in str(response.items()), url
    assert all(KEY not in morsel.value for morsel in client.cookies.values())
    assert KEY not in caplog.text
    out, err = capfd.readouterr()
    assert KEY not in out and KEY not in err
    assert KEY not in everything_in_the_database()
    assert KEY.encode() not in everything_in_the_cache()
