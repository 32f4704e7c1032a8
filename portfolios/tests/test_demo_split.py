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


def test_a_demo_holding_bought_before_the_split_keeps_its_value(user, demo):
    from marketdata.port import close_of
    from portfolios.services import apply_corporate_actions, ledger_differences

    # A holding bought at the 2025-11-14 close (1,112.17), as the time machine will fill it.
    portfolio = portfolio_create(owner=user, name="Before", opening_deposit=Decimal("20000"))
    Transaction.objects.create(
        portfolio=portfolio,
        kind=Transaction.Kind.BUY,
        ticker="NFLX",
        quantity=Decimal("10"),
        price=Decimal("1112.17"),
        cash_change=Decimal("-11121.70"),
        executed_at=close_of(date(2025, 11, 14)),
        price_source="import",
        price_as_of=close_of(date(2025, 11, 14)),
        price_was_stale=False,
    )
    Holding.objects.create(
        portfolio=portfolio, ticker="NFLX", quantity=Decimal("10"), cost_basis=Decimal("11121.70")
    )
    portfolio.cash -= Decimal("11121.70")
    portfolio.save()
    apply_corporate_actions()
    holding = Holding.objects.get(portfolio=portfolio, ticker="NFLX")
    assert holding.quantity == Decimal("100") and holding.average_cost == Decimal("111.2170")
    assert ledger_differences(portfolio=portfolio) == []
