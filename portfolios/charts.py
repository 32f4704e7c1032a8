"""Plotly figures rendered to HTML on the server; plotly.js itself comes from our static files."""

from collections.abc import Sequence

import plotly.graph_objects as go

from marketdata.port import PricePoint


def price_chart(ticker: str, history: Sequence[PricePoint]) -> str:
    """A daily close chart as an HTML fragment (a div and a script calling Plotly)."""
    figure = go.Figure(
        go.Scatter(
            x=[p.session_date.isoformat() for p in history],
            y=[str(p.price) for p in history],
            mode="lines",
            name=ticker,
            line={"width": 1.5, "color": "#1f6feb"},
            hovertemplate="%{x}<br>$%{y}<extra></extra>",
        )
    )
    figure.update_layout(
        margin={"l": 50, "r": 20, "t": 10, "b": 40},
        height=360,
        yaxis={"title": "Close (USD, as traded)", "tickprefix": "$"},
        xaxis={"type": "date"},
        template="plotly_white",
    )
    return figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"chart-{ticker}",
        config={"displaylogo": False, "responsive": True},
    )
