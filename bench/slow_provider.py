"""A slow provider and the request path (no web request waits on the provider): eight
people open stock pages of tickers nothing is stored for, and place orders for them, while
others browse their portfolios. The provider answers only after the timeout.

    python bench/slow_provider.py [--seconds 40] [--bystanders 4]

The app runs as the Procfile runs it: gunicorn (4 workers × 2 threads) and a Celery worker
(prefork, 2 processes), on the bench's PostgreSQL and Redis, with the shipped config.toml
(request budget 2 s, timeout 10 s, quota 2 s / 5 a minute / 25 a day) and the fake Alpha
Vantage answering every call after 12 s. Each person opens /stocks/SLOWn/, polls its
price-status every 2 s as the page does, and after 5 + n s places an order for SLOWn (an
order waits up to the budget for the price: eight at one instant would hold all eight web
threads). Each bystander loops over their portfolio page and its /live/ poll (10 holdings,
1,000 ledger rows). The gunicorn workers are warmed first (Plotly imported, calendar built).

Prints p50, p95 and max of each kind of request, the longest request against the budget, and
what the provider saw per clock minute and per day against the quota.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

PEOPLE = 8
SLOW_ANSWER_SECONDS = 12.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--bystanders", type=int, default=4)
    args = parser.parse_args()

    c.setup()
    c.reset_state()
    import requests
    from django.conf import settings

    from marketdata.testing import FakeAlphaVantage

    md, quota = settings.PAPERTRADE.market_data, settings.PAPERTRADE.quota
    budget = md.request_budget_seconds
    holdings = c.ticker_names(10, prefix="H")
    c.seed_bars({t: c.sessions(252) for t in holdings})
    cookies = []
    portfolios = []
    for i in range(PEOPLE + args.bystanders):
        user = c.make_user(f"slow{i:02d}")
        portfolios.append(c.make_portfolio(user, "Main", holdings, 1000).pk)
        cookies.append(c.session_cookie(user))
    cond = c.conditions()
    cond["load"] = (
        f"{PEOPLE} people on new tickers (page, polls every 2 s, one order), "
        f"{args.bystanders} bystanders looping portfolio page + poll, {args.seconds:.0f} s"
    )
    cond["provider"] = (
        f"answers after {SLOW_ANSWER_SECONDS:.0f} s; timeout {md.request_timeout_seconds:g} s; "
        f"request budget {budget:g} s"
    )

    durations: dict[str, list[float]] = {"bystander": [], "page": [], "poll": [], "order": []}
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    with FakeAlphaVantage() as fake:
        fake.slow(SLOW_ANSWER_SECONDS)
        env = c.bench_env(ALPHA_VANTAGE_API_KEY=c.PROVIDER_KEY, ALPHA_VANTAGE_BASE_URL=fake.url)
        with c.Gunicorn(env=env) as server, c.CeleryWorker(env=env):

            def client(i: int) -> requests.Session:
                session = requests.Session()
                session.cookies.set("sessionid", cookies[i])
                # A new connection each request: a kept-alive one that gunicorn closes after 2 s
                # idle races the 2 s poll and comes back "reset by peer".
                session.headers["Connection"] = "close"
                return session

            # Every gunicorn worker has imported Plotly and built the NYSE calendar, as a
            # server that has been up a while has.
            warm = client(PEOPLE)
            for _ in range(24):
                warm.get(server.url + f"/stocks/{holdings[0]}/", timeout=60)
            stop_at = time.monotonic() + args.seconds

            def timed(kind: str, session, method: str, url: str, **kw):
                started = time.monotonic()
                response = session.request(method, server.url + url, timeout=60, **kw)
                with lock:
                    durations[kind].append(time.monotonic() - started)
                    statuses[f"{kind} {response.status_code}"] += 1
                return response

            def bystander(i: int) -> None:
                session = client(PEOPLE + i)
                pk = portfolios[PEOPLE + i]
                timed("bystander", session, "GET", f"/portfolios/{pk}/")
                while time.monotonic() < stop_at:
                    timed("bystander", session, "GET", f"/portfolios/{pk}/")
                    timed("bystander", session, "GET", f"/portfolios/{pk}/live/")
                    time.sleep(0.2)

            def person(i: int) -> None:
                session = client(i)
                ticker = f"SLOW{i}"
                page = timed("page", session, "GET", f"/stocks/{ticker}/")
                since = re.search(r"price-status/\?since=(\d+)", page.text)
                ordered = False
                started = time.monotonic()
                order_after = 5.0 + i  # one order a second, not all in the same instant
                while time.monotonic() < stop_at:
                    if since:
                        url = f"/stocks/{ticker}/price-status/?since={since.group(1)}"
                        timed("poll", session, "GET", url)
                    if not ordered and time.monotonic() - started > order_after:
                        ordered = True
                        form = session.get(server.url + f"/portfolios/{portfolios[i]}/")
                        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
                        timed(
                            "order",
                            session,
                            "POST",
                            f"/portfolios/{portfolios[i]}/trade/",
                            data={
                                "side": "BUY",
                                "ticker": ticker,
                                "quantity": "1",
                                "csrfmiddlewaretoken": token.group(1) if token else "",
                            },
                            headers={"Referer": server.url + "/"},
                        )
                    time.sleep(2.0)

            threads = [
                threading.Thread(target=bystander, args=(i,)) for i in range(args.bystanders)
            ]
            threads += [threading.Thread(target=person, args=(i,)) for i in range(PEOPLE)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=args.seconds + 120)
        walls = sorted(a.wall for a in fake.arrivals)

    per_minute = Counter(int(w // 60) for w in walls)
    per_day = Counter(datetime.fromtimestamp(w, UTC).date() for w in walls)
    lines = []
    summaries = {}
    for kind, values in durations.items():
        s = c.summarize([v * 1000 for v in values])
        summaries[kind] = s
        lines.append(c.stat_line(f"{kind:9s}", s))
    longest = max(v for values in durations.values() for v in values)
    lines.append(
        f"longest request {longest * 1000:.0f} ms against a budget of {budget * 1000:.0f} ms "
        f"(+500 ms allowed); statuses {dict(statuses)}"
    )
    lines.append(
        f"provider saw {len(walls)} calls: max {max(per_minute.values(), default=0)}/clock minute "
        f"(limit {quota.per_minute}), {max(per_day.values(), default=0)} today "
        f"(limit {quota.per_day})"
    )
    c.print_block("slow provider: nobody waits on it", cond, lines)
    ok = (
        summaries["bystander"]["p95"] <= 500
        and longest <= budget + 0.5
        and max(per_minute.values(), default=0) <= quota.per_minute
    )
    rows = [
        c.row(
            "slow provider: bystanders while 8 people open unstored tickers",
            "p95 ≤ 500 ms; no request over the budget + 0.5 s; provider within the quota",
            f"bystander p95 {c.fmt_ms(summaries['bystander']['p95'])}, longest request "
            f"{longest * 1000:.0f} ms (budget {budget * 1000:.0f} ms), provider max "
            f"{max(per_minute.values(), default=0)}/min",
            ok,
        )
    ]
    c.save(
        "slow_provider",
        {"conditions": cond, "summaries": summaries, "rows": rows, "lines": lines},
    )


if __name__ == "__main__":
    main()
