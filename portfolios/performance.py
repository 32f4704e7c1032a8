"""A portfolio's value over time and its returns (PRODUCT §10.1).

The daily series is cash + Σ shares × that session's close, from the first ledger entry to the
portfolio's clock (a time machine) or today, built from two queries whatever the range or the
number of tickers: the ledger once (in time order) and the closes of every ticker it ever held
once (``MarketDataPort.get_closes``); the sessions come from the market calendar. Closes are as
traded and the shares are the ledger's, splits included, so the series is continuous across a
split; dividends are cash. A ticker without a bar on a session is valued at its last close
before it, and that session is marked (``carried``). The series is cached until the ledger or
the stored prices change (its key holds the time of the latest entry, the clock and the port's
``prices_version``).

Returns for a range, given the value at the close before it (``base``, 0 when the portfolio
started inside it) and each session's net deposit (``flow``, deposits less withdrawals):

- **change**: what the portfolio gained, the value's change less the money put in;
- **simple return**: that gain over what was at stake, ``base`` plus the deposits;
- **time-weighted return** (TWR): each session's return ``V_i / (V_{i-1} + F_i) − 1`` (a deposit
  counts from the start of its session), linked by multiplication: deposits and withdrawals
  change the stake, not the return;
- **money-weighted return** (XIRR): the yearly rate at which ``base``, the deposits and the
  withdrawals, discounted to their dates, are worth the final value (``xirr``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.core.cache import cache
from django.utils import timezone

from marketdata.port import MarketDataPort, close_of, get_price_port, session_date
from portfolios.models import Portfolio, Transaction
from portfolios.money import to_cash

ZERO = Decimal("0")
CACHE_KEY = "pt:v1:value-series:{pk}:{last}:{clock}:{end}:{prices}"
CACHE_SECONDS = 24 * 60 * 60
LOOK_BACK = timedelta(days=14)  # closes read before the first session, to carry into it
FLOWS = (Transaction.Kind.DEPOSIT, Transaction.Kind.WITHDRAWAL)


class ValuePoint(NamedTuple):  # a tuple: the cached series of 1,260 unpickles in a millisecond
    day: date
    value: Decimal  # cash + holdings at that session's closes, to the cent
    cash: Decimal
    flow: Decimal  # deposits less withdrawals that took effect that session
    carried: tuple[str, ...] = ()  # tickers valued at an earlier close (no bar that session)


def series_end(portfolio: Portfolio) -> date:
    return portfolio.clock or session_date(timezone.now())


def value_series(portfolio: Portfolio, *, prices: MarketDataPort | None = None) -> list[ValuePoint]:
    """The daily series (cached; see the module's docstring)."""
    port = prices or get_price_port()
    end = series_end(portfolio)
    key = CACHE_KEY.format(
        pk=portfolio.pk,
        last=portfolio.last_entry_at.timestamp() if portfolio.last_entry_at else 0,
        clock=portfolio.clock or "",
        end=end,
        prices=port.prices_version(),
    )
    found = cache.get(key)
    if found is None:
        found = build_series(portfolio, port, end)
        cache.set(key, found, CACHE_SECONDS)
    return found


def build_series(portfolio: Portfolio, port: MarketDataPort, end: date) -> list[ValuePoint]:
    entries = list(
        portfolio.transactions.order_by("executed_at", "id").values_list(
            "kind", "ticker", "quantity", "cash_change", "executed_at"
        )
    )
    if not entries:
        return []
    start = session_date(entries[0][4])
    days = port.sessions(start, end)
    if not days or days[-1] < end <= session_date(timezone.now()):
        days.append(end)  # today, a holiday or a weekend: the latest closes, carried
    if not days or days[0] > start:
        days.insert(0, start)  # an entry made on a day without a session
    tickers = sorted({ticker for _, ticker, *_ in entries if ticker})
    closes = port.get_closes(tickers, start - LOOK_BACK, end)

    aligned = {t: _aligned(closes.get(t, []), days) for t in tickers}
    shares: dict[str, Decimal] = {}
    cash = ZERO
    points: list[ValuePoint] = []
    i, count = 0, len(entries)
    for index, day in enumerate(days):
        until = close_of(day)
        flow = ZERO
        while i < count and entries[i][4] <= until:
            kind, ticker, quantity, cash_change, _ = entries[i]
            cash += cash_change
            if kind in FLOWS:
                flow += cash_change
            elif kind == Transaction.Kind.BUY or kind == Transaction.Kind.SPLIT:
                shares[ticker] = shares.get(ticker, ZERO) + quantity
            elif kind == Transaction.Kind.SELL:
                shares[ticker] = shares.get(ticker, ZERO) - quantity
            i += 1
        holdings = ZERO
        carried = []
        for ticker, held in shares.items():
            if held:
                close, fresh = aligned[ticker][index]
                if close is not None:
                    holdings += held * close
                if not fresh:
                    carried.append(ticker)
        points.append(ValuePoint(day, to_cash(cash + holdings), cash, flow, tuple(sorted(carried))))
    return points


def _aligned(bars: list[tuple[date, Decimal]], days: list[date]) -> list[tuple]:
    """(close, fresh) for each of ``days``: the last close on or before it (None before the
    first), fresh when it is that day's own."""
    out, k, last, n = [], -1, None, len(bars)
    for day in days:
        while k + 1 < n and bars[k + 1][0] <= day:
            k += 1
            last = bars[k]
        out.append((None, False) if last is None else (last[1], last[0] == day))
    return out


# --- returns ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Returns:
    start: date
    end: date
    base: Decimal  # the value at the close before the range (0: it started inside it)
    final: Decimal
    deposits: Decimal  # net of withdrawals, inside the range
    change: Decimal  # final − base − deposits: the gain
    simple: Decimal | None  # change ÷ (base + money put in), in %
    time_weighted: Decimal | None  # in %
    money_weighted: Decimal | None  # XIRR, a yearly rate, in %


def returns(points: Sequence[ValuePoint], start: date) -> Returns | None:
    """The returns of the range from ``start`` to the series' last point."""
    inside = [p for p in points if p.day >= start]
    if not inside:
        return None
    before = [p for p in points if p.day < start]
    base = before[-1].value if before else ZERO
    base_day = before[-1].day if before else inside[0].day
    final = inside[-1].value
    net = sum((p.flow for p in inside), ZERO)
    put_in = sum((p.flow for p in inside if p.flow > 0), ZERO)
    change = final - base - net
    stake = base + put_in
    simple = _pct(change / stake) if stake > 0 else None
    return Returns(
        start=inside[0].day,
        end=inside[-1].day,
        base=base,
        final=final,
        deposits=net,
        change=change,
        simple=simple,
        time_weighted=_pct(time_weighted(inside, base)),
        money_weighted=_pct(
            xirr(
                [(base_day, -base)] + [(p.day, -p.flow) for p in inside] + [(inside[-1].day, final)]
            )
        ),
    )


def time_weighted(points: Sequence[ValuePoint], base: Decimal) -> Decimal | None:
    """Daily-linked return: Π V_i / (V_{i−1} + F_i) − 1 over the sessions with a stake."""
    growth, previous, linked = Decimal(1), base, False
    for p in points:
        stake = previous + p.flow
        if stake > 0:
            growth *= p.value / stake
            linked = True
        previous = p.value
    return growth - 1 if linked else None


def xirr(flows: Sequence[tuple[date, Decimal]]) -> Decimal | None:
    """The yearly rate r with Σ amount / (1 + r)^(days / 365) = 0 (flows from the investor's
    side: money in negative, money out and the final value positive), or None when there is
    none (all one sign, or under a day). Newton's method from 10 %, falling back to bisection."""
    flows = [(d, float(a)) for d, a in flows if a]
    if not flows or all(a > 0 for _, a in flows) or all(a < 0 for _, a in flows):
        return None
    first = min(d for d, _ in flows)
    years = [((d - first).days / 365.0, a) for d, a in flows]
    if max(t for t, _ in years) <= 0:
        return None

    def npv(rate: float) -> float:
        return sum(a / (1 + rate) ** t for t, a in years)

    def slope(rate: float) -> float:
        return sum(-t * a / (1 + rate) ** (t + 1) for t, a in years)

    rate = 0.1
    for _ in range(50):
        value, d = npv(rate), slope(rate)
        if d == 0 or not math.isfinite(value):
            break
        step = value / d
        rate -= step
        if rate <= -0.999999:
            break
        if abs(step) < 1e-12:
            return Decimal(repr(rate))
    low, high = -0.999999, 1.0
    while npv(high) > 0 and high < 1e6:
        high *= 2
    if npv(low) * npv(high) > 0:
        return None
    for _ in range(200):
        middle = (low + high) / 2
        if npv(low) * npv(middle) <= 0:
            high = middle
        else:
            low = middle
    return Decimal(repr((low + high) / 2))


def _pct(value: Decimal | None) -> Decimal | None:
    return None if value is None else (value * 100).quantize(Decimal("0.01"))
