"""Plotly figures for the pages; plotly.js itself comes from our static files.

Each function returns an HTML fragment: an empty chart ``<div data-chart="ID">`` and the figure
as JSON in ``<script type="application/json" id="ID">``. ``static/charts.js`` draws it with
``Plotly.react`` once the page has loaded or an htmx swap has settled, never during the swap
(why: see that file). Figures are plain dicts written without plotly.py's validation; prices go
out as their decimal strings, never floats. Colours come from the page's scheme in the browser.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from django.utils.html import format_html, json_script

from marketdata.port import CorporateActionPoint, PricePoint

# --- the stock page's ranges ---------------------------------------------------------------
CHART_RANGES = {"1M": 1, "3M": 3, "6M": 6, "1Y": 12, "ALL": None}  # months back; None: all
CHART_RANGE_LABELS = {"1M": "1M", "3M": "3M", "6M": "6M", "1Y": "1Y", "ALL": "All"}
DEFAULT_RANGE = "1Y"
EARLIEST = date(1900, 1, 1)  # "All": before any stored bar


def chart_range(value: str | None) -> str:
    """The range asked for (``?range=3M``, any case), or the default for anything else."""
    value = (value or "").strip().upper()
    return value if value in CHART_RANGES else DEFAULT_RANGE


def range_start(name: str, end: date) -> date:
    """The first day of range ``name`` ending at ``end``: 3M from 10 Nov is 11 Aug onwards."""
    months = CHART_RANGES[name]
    if months is None:
        return EARLIEST
    return _months_before(end, months) + timedelta(days=1)


def _months_before(day: date, months: int) -> date:
    """The same day ``months`` earlier, or that month's last day when it is shorter."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


# --- figures -------------------------------------------------------------------------------
def _html(figure: dict, div_id: str, label: str, kind: str) -> str:
    figure = {**figure, "config": {"displaylogo": False, "responsive": True}}
    source = f"{div_id}-figure"
    return format_html(
        '<div class="chart {}" id="{}" data-chart="{}" role="figure" aria-label="{}"></div>{}',
        kind,
        div_id,
        source,
        label,
        json_script(figure, source),
    )


AS_TRADED = "traded"  # ?prices=traded: the stored bars as they traded, splits and all


def day_changes(
    history: Sequence[PricePoint], splits: Sequence[CorporateActionPoint], *, adjusted: bool
) -> list[Decimal | None]:
    """Each bar's change on the day in %, like with like: as traded, a bar on a split's
    effective date is compared with the close before divided by the factor (NFLX 2025-11-17:
    110.29 against 111.217, −0.83 %, not −90 %); adjusted bars are alike already."""
    factors = {a.date: a.value for a in splits} if not adjusted else {}
    changes: list[Decimal | None] = [None]
    for before, bar in zip(history, history[1:], strict=False):
        previous = before.close / factors.get(bar.session_date, 1)
        changes.append(((bar.close - previous) / previous * 100).quantize(Decimal("0.01")))
    return changes[: len(history)]


def price_chart(
    ticker: str,
    history: Sequence[PricePoint],
    *,
    splits: Sequence[CorporateActionPoint] = (),
    adjusted: bool = False,
) -> str:
    """A daily close chart as an HTML fragment (a div and a script calling Plotly): split-
    adjusted or as traded (then each split is marked where it took effect), with each day's
    change, like with like, in the hover."""
    changes = day_changes(history, splits, adjusted=adjusted)
    trace = {
        "type": "scatter",
        "mode": "lines",
        "name": ticker,
        "x": [p.session_date.isoformat() for p in history],
        "y": [str(p.price) for p in history],
        "customdata": ["" if c is None else f"{c:+.2f} % on the day" for c in changes],
        "line": {"width": 1.5},
        # %{y} carries the axis's "$" prefix already.
        "hovertemplate": "%{x|%a %b %-d, %Y}<br>%{y}<br>%{customdata}<extra></extra>",
    }
    how = "split-adjusted" if adjusted else "as traded"
    layout = {
        "margin": {"l": 60, "r": 20, "t": 10, "b": 40},
        "height": 360,
        "yaxis": {
            "title": {"text": f"Close (USD, {how})"},
            "tickprefix": "$",
            "hoverformat": ",.2f",
        },
        "xaxis": {"type": "date"},
    }
    if not adjusted and splits:
        layout["shapes"] = [
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": a.date.isoformat(),
                "x1": a.date.isoformat(),
                "y0": 0,
                "y1": 1,
                "line": {"dash": "dot", "width": 1},
            }
            for a in splits
        ]
        layout["annotations"] = [
            {
                "x": a.date.isoformat(),
                "xref": "x",
                "y": 1,
                "yref": "paper",
                "text": a.label,
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "top",
            }
            for a in splits
        ]
    figure = {"data": [trace], "layout": layout}
    return _html(figure, f"chart-{ticker}", f"Daily closes of {ticker}, {how}", "price")


def allocation_chart(summary) -> str:
    """The portfolio's allocation as a donut of market values, cash included; "" when the
    portfolio holds nothing. ``summary`` is the page's ``PortfolioSummary``: no price read, no
    query. A position without a price counts at cost, as the holdings table values it."""
    if not summary.holdings:
        return ""
    labels = [row.ticker for row in summary.holdings]
    values = [str(row.market_value) for row in summary.holdings]
    if summary.cash > 0:
        labels.append("Cash")
        values.append(str(summary.cash))
    trace = {
        "type": "pie",
        "hole": 0.45,
        "labels": labels,
        "values": values,
        "sort": False,
        "textinfo": "label+percent",
        "hovertemplate": "%{label}: $%{value:,.2f} (%{percent})<extra></extra>",
    }
    layout = {
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "height": 280,
        "showlegend": len(labels) <= 12,
    }
    return _html(
        {"data": [trace], "layout": layout}, "allocation-chart", "Allocation by value", "allocation"
    )


# --- value over time (PRODUCT §10.1) ---------------------------------------------------------
VALUE_RANGES = {"1M": 1, "3M": 3, "6M": 6, "YTD": "ytd", "1Y": 12, "ALL": None}
VALUE_RANGE_LABELS = {"1M": "1M", "3M": "3M", "6M": "6M", "YTD": "YTD", "1Y": "1Y", "ALL": "All"}
DEFAULT_VALUE_RANGE = "ALL"
DEFAULT_BENCHMARK = "SPY"


def value_range(value: str | None) -> str:
    value = (value or "").strip().upper()
    return value if value in VALUE_RANGES else DEFAULT_VALUE_RANGE


def value_range_start(name: str, end: date) -> date:
    months = VALUE_RANGES[name]
    if months is None:
        return EARLIEST
    if months == "ytd":
        return date(end.year, 1, 1)
    return _months_before(end, months) + timedelta(days=1)


def benchmark_ticker(asked: str | None, port) -> str:
    """The benchmark asked for (any ticker with stored prices), else SPY when stored, else
    the first ticker of the configured watchlist with stored prices; "" when none is."""
    from django.conf import settings

    from marketdata.port import InvalidTicker, MarketDataError, normalize_ticker

    if asked:
        try:
            return normalize_ticker(asked)
        except InvalidTicker:
            return ""
    candidates = [DEFAULT_BENCHMARK, *settings.PAPERTRADE.refresh.watchlist]
    found = port.get_current_prices(candidates)
    for ticker in candidates:
        if not isinstance(found.get(ticker), MarketDataError):
            return ticker
    return ""


def rebased(bars: Sequence[PricePoint], points) -> list[tuple[date, Decimal]]:
    """The benchmark's (split-adjusted) closes on the portfolio's sessions, the last close
    carried over a gap, scaled to start at the portfolio's first non-zero value in the range."""
    if not bars or not points:
        return []
    start = next((p for p in points if p.value > 0), None)
    if start is None:
        return []
    line, k = [], -1
    for p in points:
        while k + 1 < len(bars) and bars[k + 1].session_date <= p.day:
            k += 1
        if k >= 0 and p.day >= start.day:
            line.append((p.day, bars[k].close))
    if not line:
        return []
    scale = start.value / line[0][1]
    return [(day, (close * scale).quantize(Decimal("0.01"))) for day, close in line]


def value_chart(points, benchmark: Sequence[tuple[date, Decimal]], name: str) -> str:
    """The portfolio's value over time (and the benchmark, rebased), gaps marked."""
    value = {
        "type": "scatter",
        "mode": "lines",
        "name": "Portfolio",
        "x": [p.day.isoformat() for p in points],
        "y": [str(p.value) for p in points],
        "customdata": [
            f"prices carried from an earlier close: {', '.join(p.carried)}" if p.carried else ""
            for p in points
        ],
        "line": {"width": 2},
        "hovertemplate": "%{x|%a %b %-d, %Y}<br>%{y}<br>%{customdata}<extra></extra>",
    }
    traces = [value]
    gaps = [p for p in points if p.carried]
    if gaps:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "Carried close",
                "x": [p.day.isoformat() for p in gaps],
                "y": [str(p.value) for p in gaps],
                "marker": {"symbol": "circle-open", "size": 6},
                "hoverinfo": "skip",
            }
        )
    if benchmark:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{name} (rebased)",
                "x": [d.isoformat() for d, _ in benchmark],
                "y": [str(v) for _, v in benchmark],
                "line": {"width": 1.5, "dash": "dash"},
                "hovertemplate": f"{name}: " + "%{y}<extra></extra>",
            }
        )
    layout = {
        "margin": {"l": 70, "r": 20, "t": 10, "b": 40},
        "height": 320,
        "yaxis": {"title": {"text": "Value (USD)"}, "tickprefix": "$", "hoverformat": ",.2f"},
        "xaxis": {"type": "date"},
        "legend": {"orientation": "h", "y": -0.2},
    }
    return _html({"data": traces, "layout": layout}, "value-chart", "Value over time", "value")
