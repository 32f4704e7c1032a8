"""The bundled demo data's NFLX 10-for-1 split (2025-11-17): the chart is continuous in the
adjusted view, shows the cliff as traded, and the day's change on the split day is about
−0.8 %, not −90 % (PRODUCT §2.8, §3.11)."""

import json
import re
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command

from portfolios.models import Holding, Transaction
from portfolios.services import portfolio_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(db):
    call_command("load_demo_prices", stdout=open("/dev/null", "w"))  # noqa: SIM115


def chart(body: str) -> dict:
    found = re.search(
        r'<script id="chart-NFLX-figure" type="application/json">(.*?)</script>', body
    )
    return json.loads(found.group(1))


def day_moves(trace: dict) -> list[float]:
    ys = [float(y) for y in trace["y"]]
    return [b / a - 1 for a, b in zip(ys, ys[1:], strict=False)]


def test_the_adjusted_chart_is_continuous_and_the_traded_one_shows_the_cliff(auth_client, demo):
    adjusted = auth_client.get("/stocks/NFLX/?range=ALL").content.decode()
    trace = chart(adjusted)["data"][0]
    assert max(abs(m) for m in day_moves(trace)) < 0.15
    on_split = trace["x"].index("2025-11-17")
    assert trace["customdata"][on_split] == "-0.83 % on the day"
    assert "prices before the 10-for-1 split on Mon 17 Nov 2025 are divided by 10" in adjusted
    assert "(USD, split-adjusted)" in adjusted

    traded = auth_client.get("/stocks/NFLX/?range=ALL&prices=traded").content.decode()
    figure = chart(traded)
    assert min(day_moves(figure["data"][0])) < -0.85  # 1,112.17 → 110.29
    assert figure["data"][0]["customdata"][on_split] == "-0.83 % on the day"  # still like-for-like
    assert figure["layout"]["shapes"][0]["x0"] == "2025-11-17"
    assert "10-for-1 split" in figure["layout"]["annotations"][0]["text"]


def test_a_time_machine_holding_keeps_its_value_as_the_clock_crosses_the_split(user, demo):
    from portfolios.selectors import portfolio_summary
    from portfolios.services import ledger_differences, portfolio_advance, portfolio_buy

    portfolio = portfolio_create(
        owner=user, name="Before", opening_deposit=Decimal("20000"), starts_on=date(2025, 11, 14)
    )
    bought = portfolio_buy(portfolio=portfolio, ticker="NFLX", quantity=Decimal("10"))
    assert bought.price == Decimal("1112.1700")
    before = portfolio_summary(portfolio).total_value
    portfolio_advance(portfolio=portfolio, to=date(2025, 11, 17))
    holding = Holding.objects.get(portfolio=portfolio, ticker="NFLX")
    assert holding.quantity == Decimal("100") and holding.average_cost == Decimal("111.2170")
    split = Transaction.objects.get(portfolio=portfolio, kind=Transaction.Kind.SPLIT)
    assert split.quantity == Decimal("90") and split.effective_on == date(2025, 11, 17)
    after = portfolio_summary(portfolio).total_value
    # 10 × 1,112.17 then 100 × 110.29: the day's move (−0.83 %), not a 90 % loss.
    assert after - before == Decimal("100") * Decimal("110.29") - Decimal("11121.70")
    assert ledger_differences(portfolio=portfolio) == []
