"""The formatting of the portfolio pages: times in the market's zone, the price cell, and the
rows of the holdings and transactions tables (partials of the portfolio page)."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.template.loader import render_to_string
from django.utils import timezone

from marketdata.port import PricePoint, Source
from portfolios.models import Transaction
from portfolios.selectors import HoldingRow
from portfolios.templatetags.money import market_time, price_cell


def render(source: str, **context) -> str:
    return Template("{% load money %}" + source).render(Context(context))


def row_partial(name: str, **context) -> str:
    return render_to_string(f"portfolios/portfolio_detail.html#{name}", context)


@pytest.mark.parametrize(
    ("moment", "shown", "iso"),
    [
        (datetime(2023, 11, 10, 21, 0, tzinfo=UTC), "2023-11-10 16:00 EST", "-05:00"),
        (datetime(2023, 7, 3, 20, 0, tzinfo=UTC), "2023-07-03 16:00 EDT", "-04:00"),
        (datetime(2024, 1, 2, 3, 30, tzinfo=UTC), "2024-01-01 22:30 EST", "-05:00"),
    ],
)
def test_market_time_is_what_the_date_filter_shows_in_new_york(moment, shown, iso):
    with timezone.override("America/New_York"):
        html = market_time(moment)
        by_django = render(
            """<time datetime="{{ m|date:'c' }}">{{ m|date:"Y-m-d H:i T" }}</time>""", m=moment
        )

    assert html == by_django
    assert f">{shown}</time>" in html
    assert f'{iso}">' in html  # the datetime attribute carries the offset


def test_market_time_with_seconds_and_without_a_value():
    moment = datetime(2023, 11, 10, 21, 0, 5, tzinfo=UTC)
    with timezone.override("America/New_York"):
        assert market_time(moment, True) == render(
            """<time datetime="{{ m|date:'c' }}">{{ m|date:"H:i:s T" }}</time>""", m=moment
        )
    assert market_time(None) == ""


def test_the_price_cell_shows_price_time_source_and_escapes_it():
    point = PricePoint(
        ticker="AAPL",
        price=Decimal("186.4000"),
        as_of=datetime(2023, 11, 10, 21, 0, tzinfo=UTC),
        source="<script>",
        is_stale=True,
    )
    with timezone.override("America/New_York"):
        html = str(price_cell({"market_data_live": True}, point))

    assert '<span class="price">$186.40</span>' in html
    assert ">2023-11-10 16:00 EST</time>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'class="badge stale"' in html
    fresh = PricePoint(
        ticker="AAPL", price=Decimal("1.2345"), as_of=point.as_of, source=Source.IMPORT
    )
    html = str(price_cell({"market_data_live": True}, fresh))
    assert "$1.2345" in html and "stale" not in html and Source.LABELS[Source.IMPORT] in html


def test_the_offline_demo_labels_a_price_a_demo_close():
    point = PricePoint(
        ticker="AAPL",
        price=Decimal("278.2800"),
        as_of=datetime(2025, 12, 12, 21, 0, tzinfo=UTC),
        source=Source.IMPORT,
    )
    html = str(price_cell({"market_data_live": False}, point))
    assert "· demo close</small>" in html and Source.LABELS[Source.IMPORT] + "<" not in html


def test_a_holding_row_shows_each_cell_with_its_sign(db):
    row = HoldingRow(
        ticker="BRK.B",
        quantity=Decimal("10.5000"),
        cost_basis=Decimal("1000.00"),
        average_cost=Decimal("95.2381"),
        price=PricePoint(
            ticker="BRK.B",
            price=Decimal("90.0000"),
            as_of=datetime(2023, 11, 10, 21, 0, tzinfo=UTC),
            source=Source.IMPORT,
        ),
        market_value=Decimal("945.00"),
        unrealized_gain=Decimal("-55.00"),
        unrealized_gain_pct=Decimal("-5.50"),
        day_change=Decimal("12.25"),
        day_change_pct=None,
        weight_pct=Decimal("47.3"),
    )

    html = row_partial("holding-row", row=row)

    assert html.startswith('<tr data-ticker="BRK.B">') and html.endswith("</tr>")
    assert '<a href="/stocks/BRK.B/">BRK.B</a>' in html
    assert '<td class="num">10.5</td>' in html
    assert '<td class="num">$95.2381</td>' in html
    assert '<span class="price">$90.00</span>' in html
    assert '<td class="num market-value">$945.00</td>' in html
    assert '<td class="num neg">-$55.00 (-5.50%)</td>' in html
    assert '<td class="num pos">+$12.25</td>' in html  # signed, not told by colour alone
    assert '<td class="num">47.3%</td>' in html
    # "Sell" fills in the shares owned, and says which holding it sells.
    assert 'href="?side=SELL&amp;ticker=BRK.B&amp;quantity=10.5#trade-panel"' in html
    assert 'aria-label="Sell BRK.B"' in html


def test_a_holding_row_without_a_price_says_why_escaped(db):
    row = HoldingRow(
        ticker="XYZ",
        quantity=Decimal("1"),
        cost_basis=Decimal("5.00"),
        average_cost=Decimal("5.0000"),
        price=None,
        price_error='No price for "XYZ" <now>',
        market_value=Decimal("5.00"),
    )

    html = row_partial("holding-row", row=row)

    assert 'title="No price for &quot;XYZ&quot; &lt;now&gt;">unavailable</span>' in html
    assert '<td class="num ">—</td>' in html  # no gain known: a dash, no sign
    assert '<td class="num"></td>' in html  # no weight


def test_a_transaction_row_shows_a_trade_and_its_price_source():
    buy = Transaction(
        kind=Transaction.Kind.BUY,
        ticker="AAPL",
        quantity=Decimal("2.0000"),
        price=Decimal("186.4000"),
        cash_change=Decimal("-372.80"),
        executed_at=datetime(2023, 11, 13, 15, 0, tzinfo=UTC),
        price_as_of=datetime(2023, 11, 10, 21, 0, tzinfo=UTC),
        price_source=Source.IMPORT,
        price_was_stale=True,
    )
    with timezone.override("America/New_York"):
        html = row_partial("transaction-row", t=buy)

    cells = re.findall(r"<td[^>]*>(.*?)</td>", html)
    assert cells == [
        '<time datetime="2023-11-13T10:00:00-05:00">2023-11-13 10:00 EST</time>',
        "Buy",
        '<a href="/stocks/AAPL/">AAPL</a>',
        "2",
        "$186.40",
        "-$372.80",
        "",  # no realized gain on a buy
        '<time datetime="2023-11-10T16:00:00-05:00">2023-11-10 16:00 EST</time> · '
        f'{Source.LABELS[Source.IMPORT]} <span class="badge stale">stale</span>',
    ]
    assert '<td class="num neg">-$372.80</td>' in html


def test_a_deposit_row_leaves_the_trade_cells_empty():
    deposit = Transaction(
        kind=Transaction.Kind.DEPOSIT,
        ticker="",
        cash_change=Decimal("1000.00"),
        executed_at=datetime(2023, 11, 13, 15, 0, tzinfo=UTC),
    )

    html = row_partial("transaction-row", t=deposit)

    assert '<td class="num"></td>\n  <td class="num"></td>' in html
    assert '<td class="num pos">+$1,000.00</td>\n  <td class="num "></td>\n  <td></td>' in html
