"""The admin as an inspection tool: price history listed, filtered, searched, never edited; and
an action that queues a refresh of the selected tickers through Celery."""

from datetime import date

import pytest

from marketdata.models import PriceHistory
from marketdata.port import Source
from marketdata.schedule import REFRESH_SCHEDULE_NAME
from marketdata.tests.factories import store_bars
from papertrade.celery import app

pytestmark = pytest.mark.django_db
LIST = "/admin/marketdata/pricehistory/"


@pytest.fixture
def staff_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser(username="ops", password="x" * 12)
    client.force_login(admin)
    return client


@pytest.fixture
def eager_celery():
    """Queued tasks run at once, in this process (and their errors surface)."""
    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def bars(aapl, ibm):
    store_bars("NVDA", [(date(2023, 11, 10), "483.3500")], source=Source.ALPHA_VANTAGE)
    return PriceHistory.objects.all()


def test_staff_see_the_price_history_list(staff_client, bars):
    body = staff_client.get(LIST).content.decode()
    assert "483.3500" in body and "186.4000" in body
    assert "Nov. 10, 2023" in body  # the session's date, not a UTC timestamp
    assert "Market-data status" in body  # a link to the status page


@pytest.mark.parametrize(
    "query",
    [
        "?source__exact=import",
        "?source__exact=alpha_vantage",
        "?interval__exact=1d",
        "?timestamp__year=2023",
        "?timestamp__year=2023&timestamp__month=11&timestamp__day=10",
        "?q=nv",
        "?o=2",
    ],
)
def test_the_filters_hierarchy_and_search_render(staff_client, bars, query):
    assert staff_client.get(LIST + query).status_code == 200


def test_search_finds_a_ticker_by_its_beginning(staff_client, bars):
    body = staff_client.get(LIST + "?q=nv").content.decode()
    assert "483.3500" in body
    assert "186.4000" not in body


def test_rows_are_read_only_imported_or_not(staff_client, bars):
    imported = PriceHistory.objects.filter(source=Source.IMPORT).first()
    page = staff_client.get(f"{LIST}{imported.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert staff_client.post(f"{LIST}{imported.pk}/change/", {"close": "1"}).status_code == 403
    assert staff_client.get(f"{LIST}add/").status_code == 403
    assert staff_client.get(f"{LIST}{imported.pk}/delete/").status_code == 403
    assert PriceHistory.objects.get(pk=imported.pk).close == imported.close


def test_the_refresh_action_queues_the_selected_tickers(
    staff_client, bars, live, fake_av, eager_celery, django_capture_on_commit_callbacks
):
    selected = PriceHistory.objects.filter(ticker__in=["AAPL", "IBM"]).values_list("pk", flat=True)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = staff_client.post(
            LIST,
            {"action": "refresh_selected_tickers", "_selected_action": list(selected)},
            follow=True,
        )
    # One task, queued after the request's transaction commits (the eager task's own callbacks,
    # announcing the bars it stored, come after it).
    queued = [c for c in callbacks if "refresh_tickers" in repr(c)]
    assert len(queued) == 1 and callbacks[0] is queued[0]
    assert "Queued a refresh of 2 tickers (AAPL, IBM)" in response.content.decode()
    assert fake_av.count("TIME_SERIES_DAILY", "AAPL") == 1
    assert fake_av.count("TIME_SERIES_DAILY", "IBM") == 1
    assert fake_av.count("TIME_SERIES_DAILY", "NVDA") == 0


def test_offline_the_refresh_action_says_nothing_can_be_fetched_and_queues_nothing(
    staff_client, bars, settings, django_capture_on_commit_callbacks
):
    settings.ALPHA_VANTAGE_API_KEY = ""
    selected = PriceHistory.objects.filter(ticker="AAPL").values_list("pk", flat=True)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff_client.post(
            LIST,
            {"action": "refresh_selected_tickers", "_selected_action": list(selected)},
            follow=True,
        )
    assert callbacks == []  # no task queued to pile up
    body = response.content.decode()
    assert "Nothing can be fetched without an API key" in body and "Queued" not in body


def test_people_who_are_not_staff_are_sent_to_the_admin_login(auth_client, bars):
    response = auth_client.get(LIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_refresh_schedule_is_editable_in_the_admin(staff_client):
    body = staff_client.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert REFRESH_SCHEDULE_NAME in body


# --- corporate actions ----------------------------------------------------------------------------
ACTIONS = "/admin/marketdata/corporateaction/"


def test_corporate_actions_are_listed_filtered_and_fetched_ones_are_read_only(staff_client):
    from decimal import Decimal

    from django.utils import timezone

    from marketdata.models import CorporateAction

    fetched = CorporateAction.objects.create(
        ticker="IBM",
        kind="DIVIDEND",
        date=date(2024, 5, 9),
        value=Decimal("1.67"),
        source=Source.ALPHA_VANTAGE,
        fetched_at=timezone.now(),
    )
    imported = CorporateAction.objects.create(
        ticker="NFLX",
        kind="SPLIT",
        date=date(2025, 11, 17),
        value=Decimal("10"),
        source=Source.IMPORT,
        fetched_at=timezone.now(),
    )
    body = staff_client.get(ACTIONS).content.decode()
    assert "IBM" in body and "NFLX" in body
    splits = staff_client.get(ACTIONS + "?kind__exact=SPLIT").content.decode()
    assert "NFLX" in splits and "1.67" not in splits
    assert "IBM" not in staff_client.get(ACTIONS + "?q=nf").content.decode().split("<tbody")[-1]

    page = staff_client.get(f"{ACTIONS}{fetched.pk}/change/").content.decode()
    assert 'name="_save"' not in page  # the provider's: read-only
    change = {"ticker": "IBM", "kind": "DIVIDEND", "date": "2024-05-09", "value": "9"}
    assert staff_client.post(f"{ACTIONS}{fetched.pk}/change/", change).status_code == 403
    assert staff_client.get(f"{ACTIONS}{fetched.pk}/delete/").status_code == 403
    assert 'name="_save"' in staff_client.get(f"{ACTIONS}{imported.pk}/change/").content.decode()


def test_an_action_added_in_the_admin_reaches_positions(
    staff_client, portfolio, django_capture_on_commit_callbacks
):
    from decimal import Decimal

    from portfolios.models import Holding
    from portfolios.services import portfolio_buy

    store_bars("ADMN", [(date(2024, 3, 4), "40.0000")])
    portfolio_buy(portfolio=portfolio, ticker="ADMN", quantity=Decimal("3"))
    form = {"ticker": "admn", "kind": "SPLIT", "date": "2024-03-05", "value": "3"}
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(ACTIONS + "add/", form)
    assert response.status_code == 302
    assert Holding.objects.get(portfolio=portfolio, ticker="ADMN").quantity == Decimal("9")
