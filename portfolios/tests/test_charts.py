"""Charts: the stock page's price history with its ranges, and the portfolio's allocation."""

import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from marketdata.tests.factories import store_bars, store_series
from portfolios.services import portfolio_buy

pytestmark = pytest.mark.django_db

LAST_DAY = date(2023, 11, 10)  # a Friday
# The first day of each range ending on LAST_DAY (a month back, plus a day).
RANGE_STARTS = {
    "1M": date(2023, 10, 11),
    "3M": date(2023, 8, 11),
    "6M": date(2023, 5, 11),
    "1Y": date(2022, 11, 11),
}


def weekdays(start: date, end: date) -> int:
    return sum((start + timedelta(days=i)).weekday() < 5 for i in range((end - start).days + 1))


@pytest.fixture
def series(db):
    """600 consecutive weekday closes (about two years and four months) ending LAST_DAY."""
    return store_series("CHRT", LAST_DAY, [f"{50 + i / 10:.4f}" for i in range(600)])


def figure(body: str, div_id: str) -> dict:
    """The figure the page hands charts.js for the chart ``div_id``."""
    div = re.search(rf'<div class="chart \w+" id="{re.escape(div_id)}" data-chart="([^"]+)"', body)
    assert div, f"no chart {div_id!r} in the page"
    source = re.search(
        rf'<script id="{re.escape(div.group(1))}" type="application/json">(.*?)</script>',
        body,
        re.S,
    )
    assert source, f"chart {div_id!r} has no figure"
    return json.loads(source.group(1))


def plotted(body: str, div_id: str) -> dict:
    """The first trace the chart ``div_id`` draws."""
    return figure(body, div_id)["data"][0]


def current_range(body: str) -> list[str]:
    return re.findall(r'href="\?range=([A-Z0-9]+)"[^>]*aria-current="true"', body)


# --- the stock page ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["1M", "3M", "6M", "1Y"])
def test_each_range_plots_the_bars_since_its_start(auth_client, series, name):
    body = auth_client.get(f"/stocks/CHRT/?range={name}").content.decode()
    trace = plotted(body, "chart-CHRT")
    assert len(trace["x"]) == weekdays(RANGE_STARTS[name], LAST_DAY)
    first = RANGE_STARTS[name]
    while first.weekday() >= 5:
        first += timedelta(days=1)
    assert trace["x"][0] == first.isoformat()
    assert trace["x"][-1] == "2023-11-10"
    assert trace["y"][-1] == "109.9000"  # decimal strings, never floats
    assert current_range(body) == [name]


def test_all_plots_every_stored_bar(auth_client, series):
    body = auth_client.get("/stocks/CHRT/?range=ALL").content.decode()
    assert len(plotted(body, "chart-CHRT")["x"]) == 600
    assert current_range(body) == ["ALL"]


def test_the_default_range_is_a_year(auth_client, series):
    body = auth_client.get("/stocks/CHRT/").content.decode()
    assert len(plotted(body, "chart-CHRT")["x"]) == weekdays(RANGE_STARTS["1Y"], LAST_DAY)
    assert current_range(body) == ["1Y"]


@pytest.mark.parametrize("value", ["5Y", "", "%3Cscript%3Ealert(1)%3C/script%3E", "9" * 500, "%00"])
def test_an_invalid_range_gets_the_default(auth_client, series, value):
    response = auth_client.get(f"/stocks/CHRT/?range={value}")
    assert response.status_code == 200
    body = response.content.decode()
    assert current_range(body) == ["1Y"]
    assert len(plotted(body, "chart-CHRT")["x"]) == weekdays(RANGE_STARTS["1Y"], LAST_DAY)
    assert "alert(1)" not in body


def test_a_range_is_lowercase_tolerant(auth_client, series):
    body = auth_client.get("/stocks/CHRT/?range=3m").content.decode()
    assert current_range(body) == ["3M"]


def test_the_range_buttons_are_links_that_work_without_javascript(auth_client, series):
    body = auth_client.get("/stocks/CHRT/").content.decode()
    for name, label in (("1M", "1M"), ("3M", "3M"), ("6M", "6M"), ("1Y", "1Y"), ("ALL", "All")):
        assert re.search(
            rf'<a href="\?range={name}" hx-get="\?range={name}"[^>]*>{label}</a>', body
        )


def test_an_htmx_range_request_gets_the_chart_fragment_alone(auth_client, series):
    response = auth_client.get(
        "/stocks/CHRT/?range=3M", headers={"HX-Request": "true", "HX-Target": "chart"}
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="chart"')
    assert body.rstrip().endswith("</section>")
    assert "<html" not in body and "Buy CHRT" not in body and "plotly-basic.min.js" not in body
    assert len(plotted(body, "chart-CHRT")["x"]) == weekdays(RANGE_STARTS["3M"], LAST_DAY)
    assert current_range(body) == ["3M"]
    assert "HX-Request" in response["Vary"]


def test_a_history_restore_gets_the_whole_page(auth_client, series):
    headers = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    body = auth_client.get("/stocks/CHRT/?range=3M", headers=headers).content.decode()
    assert "<html" in body and "Buy CHRT" in body
    assert current_range(body) == ["3M"]


def test_the_chart_says_how_bars_are_adjusted_and_when_the_latest_is_from(auth_client, series):
    body = auth_client.get("/stocks/CHRT/?range=1M").content.decode()
    chart = body.split('id="chart"')[1]
    assert "no split in this range, so these are the prices as traded" in chart
    assert "Latest bar as of" in chart and "2023-11-10 16:00 EST" in chart


def test_a_range_shows_only_the_bars_stored_in_it(auth_client, db):
    store_bars("GONE", [(date(2020, 1, 2), "10.0000")])
    store_bars("GONE", [(date(2023, 11, 10), "11.0000")])
    body = auth_client.get("/stocks/GONE/?range=1M").content.decode()
    assert len(plotted(body, "chart-GONE")["x"]) == 1
    body = auth_client.get("/stocks/GONE/?range=ALL").content.decode()
    assert len(plotted(body, "chart-GONE")["x"]) == 2


# --- the portfolio's allocation ---------------------------------------------------------------
def test_the_allocation_chart_shows_holdings_and_cash(auth_client, portfolio, aapl, ibm):
    portfolio_buy(portfolio=portfolio, ticker="AAPL", quantity=Decimal("10"))
    portfolio_buy(portfolio=portfolio, ticker="IBM", quantity=Decimal("5"))
    body = auth_client.get(f"/portfolios/{portfolio.pk}/").content.decode()
    pie = plotted(body, "allocation-chart")
    assert pie["type"] == "pie"
    # 10 × 186.40 and 5 × 149.02; the cash left of 10,000.00.
    assert dict(zip(pie["labels"], pie["values"], strict=True)) == {
        "AAPL": "1864.00",
        "IBM": "745.10",
        "Cash": "7390.90",
    }
    # The poller's fragment carries it too, so it follows the prices.
    live = auth_client.get(f"/portfolios/{portfolio.pk}/live/").content.decode()
    assert plotted(live, "allocation-chart")["labels"] == ["AAPL", "IBM", "Cash"]


def test_no_allocation_chart_without_holdings(auth_client, portfolio):
    body = auth_client.get(f"/portfolios/{portfolio.pk}/").content.decode()
    assert "allocation-chart" not in body
    assert "No holdings yet" in body


def test_the_allocation_chart_costs_no_query(auth_client, portfolio, django_assert_max_num_queries):
    tickers = [f"T{i}" for i in range(50)]
    for t in tickers:
        store_bars(t, [(date(2023, 11, 9), "10.0000"), (date(2023, 11, 10), "11.0000")])
        portfolio_buy(portfolio=portfolio, ticker=t, quantity=Decimal("1"))
    auth_client.get(f"/portfolios/{portfolio.pk}/")  # warm the cache
    with django_assert_max_num_queries(10):
        response = auth_client.get(f"/portfolios/{portfolio.pk}/")
    body = response.content.decode()
    assert body.count("data-ticker=") == 50
    assert plotted(body, "allocation-chart")["labels"] == [*sorted(tickers), "Cash"]


def test_a_figure_cannot_close_its_script_tag(auth_client, db):
    store_bars("EVIL", [(date(2023, 11, 10), "11.0000")])
    body = auth_client.get("/stocks/EVIL/").content.decode()
    source = body.split('<script id="chart-EVIL-figure" type="application/json">')[1]
    assert "</script>" in source and "<" not in source.split("</script>")[0]
    assert "Plotly.newPlot" not in body  # drawn by charts.js after htmx settles, not inline
