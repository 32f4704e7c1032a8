"""Quota (PRODUCT §3.4, §7 row 7): several processes hammering the price port → upstream calls
per second, per minute and per day counted by the fake Alpha Vantage, which enforces the same
limits and counts every call that broke one.

    python bench/quota.py [--processes 6] [--quick]

Five phases, each with its own limits (config.toml [quota] written to a file the processes
read through PAPERTRADE_CONFIG); the shared quota lives in Redis:
- shipped: the shipped limits (2 s spacing, 5 a minute, 25 a day) for 25 s;
- minute:  0.1 s spacing, 20 a minute, 1000 a day, for 15 s: the minute window binds;
- day:     0.1 s spacing, 1000 a minute, 30 a day (5 kept for people), for 12 s: the day binds;
- outage:  0.3 s spacing, 8 a minute, 12 a day, for 15 s, every answer an HTML 503: each call
  is retried, and each retry must take its own slot (the minute binds);
- slow:    0.3 s spacing, 1000 a minute, 10 a day, for 15 s, every answer 1 s late against a
  0.4 s timeout (the same retries): the day binds.
Every process loops over new tickers for the phase's duration, alternating a person's fetch
(what the worker behind a web request runs: Upstream.fetch at interactive priority, waiting up
to 2.5 s for the spacing) with a scheduled refresh (Upstream.fetch at HELD priority, waiting up
to 1 s as fetch_tickers does). In the failing phases the breaker is kept out of the way
(failures_to_open = 1000), so that only the quota stands between the load and the provider.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

PHASES = {
    "shipped": (
        {
            "min_seconds_between_calls": 2.0,
            "per_minute": 5,
            "per_day": 25,
            "interactive_reserve": 5,
        },
        25.0,
    ),
    "minute": (
        {
            "min_seconds_between_calls": 0.1,
            "per_minute": 20,
            "per_day": 1000,
            "interactive_reserve": 5,
        },
        15.0,
    ),
    "day": (
        {
            "min_seconds_between_calls": 0.1,
            "per_minute": 1000,
            "per_day": 30,
            "interactive_reserve": 5,
        },
        12.0,
    ),
    "outage": (
        {
            "min_seconds_between_calls": 0.3,
            "per_minute": 8,
            "per_day": 12,
            "interactive_reserve": 2,
        },
        15.0,
    ),
    "slow": (
        {
            "min_seconds_between_calls": 0.3,
            "per_minute": 1000,
            "per_day": 10,
            "interactive_reserve": 2,
        },
        15.0,
    ),
}
FAILING = {
    "outage": {"market_data": {"request_timeout_seconds": 0.4}},
    "slow": {"market_data": {"request_timeout_seconds": 0.4}},
}
SLOW_ANSWER_SECONDS = 1.0
# The quota spaces *acquires*; the HTTP request leaves a few ms later (quota.py docstring), so
# arrivals may be that much closer: the fake forgives this much on the spacing.
TOLERANCE = 0.05


def child(name: str, index: int, seconds: float) -> None:
    c.setup(child=True, migrate=False)
    from marketdata.port import MarketDataError, RateLimited
    from marketdata.quota import Priority
    from marketdata.wiring import get_market_data

    port = get_market_data()
    port.due_session()  # the calendar, built before the start
    c.wait_for_go()
    start_at = time.time()
    outcomes: Counter[str] = Counter()
    i = 0
    while time.time() < start_at + seconds:
        ticker = f"Q{name[0].upper()}{index}X{i}"
        i += 1
        try:
            if i % 2:
                port.upstream.fetch(ticker, priority=Priority.INTERACTIVE)
                outcomes["interactive ok"] += 1
            else:
                port.upstream.fetch(ticker, priority=Priority.HELD, wait=1.0)
                outcomes["scheduled ok"] += 1
        except RateLimited as exc:
            outcomes[f"{'interactive' if i % 2 else 'scheduled'} refused ({exc.scope})"] += 1
            time.sleep(0.05)  # hammering, not spinning
        except MarketDataError as exc:
            said = "retry refused" if "not retried" in str(exc) else type(exc).__name__
            outcomes[f"error {said}"] += 1
            time.sleep(0.05)
    print(json.dumps(outcomes))


def windows(walls: list[float]) -> dict:
    """Calls per clock second, per clock minute and per day; the smallest gap between two."""
    walls = sorted(walls)
    gaps = [b - a for a, b in zip(walls, walls[1:], strict=False)]
    per_second = Counter(int(w) for w in walls)
    per_minute = Counter(int(w // 60) for w in walls)
    per_day = Counter(datetime.fromtimestamp(w, UTC).date() for w in walls)
    return {
        "calls": len(walls),
        "min_gap_s": min(gaps) if gaps else None,
        "max_per_second": max(per_second.values(), default=0),
        "max_per_minute": max(per_minute.values(), default=0),
        "per_day": sum(per_day.values()),
        "minutes_spanned": len(per_minute),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="halve the phases' durations")
    args = parser.parse_args()

    c.setup()
    c.reset_state()
    from django_redis import get_redis_connection

    from marketdata.quota import Priority, RedisQuota
    from marketdata.testing import FakeAlphaVantage

    cond = c.conditions()
    cond["processes"] = f"{args.processes} processes, each alternating interactive and scheduled"
    redis = get_redis_connection("default")
    results = {}
    with FakeAlphaVantage() as fake:
        for name, (limits, seconds) in PHASES.items():
            seconds = seconds / 2 if args.quick else seconds
            redis.flushdb()
            fake.reset()
            fake.outage(None if name == "outage" else 0)
            fake.slow(SLOW_ANSWER_SECONDS if name == "slow" else 0.0)
            fake.limits(
                min_interval=limits["min_seconds_between_calls"],
                per_minute=limits["per_minute"],
                per_day=limits["per_day"],
                tolerance=TOLERANCE,
            )
            overrides = {"quota": limits, **FAILING.get(name, {})}
            if name in FAILING:
                overrides["breaker"] = {"failures_to_open": 1000}
            config = c.write_config(overrides, f"quota-{name}")
            env = c.bench_env(
                ALPHA_VANTAGE_API_KEY=c.PROVIDER_KEY,
                ALPHA_VANTAGE_BASE_URL=fake.url,
                PAPERTRADE_CONFIG=str(config),
            )
            procs = c.start_children(
                [
                    [str(c.VENV_PYTHON), __file__, "--child", name, str(i), str(seconds)]
                    for i in range(args.processes)
                ],
                env,
            )
            c.go(procs)
            outcomes: Counter[str] = Counter()
            for line in c.collect(procs, timeout=seconds + 120):
                outcomes.update(json.loads(line))
            walls = [a.wall for a in fake.arrivals]
            fig = windows(walls)
            status = RedisQuota(config=_config(limits)).status()
            fig |= {
                "violations": fake.violations,
                "violation_log": [v.detail for v in fake.violation_log][:10],
                "outcomes": dict(outcomes),
                "quota_by_priority": {
                    Priority(p).name: n for p, n in status.used_day_by_priority.items()
                },
                "limits": limits,
                "seconds": seconds,
            }
            results[name] = fig
            print(
                f"   {name}: {fig['calls']} upstream calls, {fig['violations']} violations",
                flush=True,
            )
    redis.flushdb()

    lines = []
    for name, f in results.items():
        lim = f["limits"]
        lines.append(
            f"{name:8s} limits {lim['min_seconds_between_calls']} s / {lim['per_minute']} a minute"
            f" / {lim['per_day']} a day ({lim['interactive_reserve']} kept for people), "
            f"{f['seconds']:.0f} s × {args.processes} processes:"
        )
        lines.append(
            f"         upstream saw {f['calls']} calls: min gap {f['min_gap_s'] or 0:.3f} s, max "
            f"{f['max_per_second']}/clock second, max {f['max_per_minute']}/clock minute "
            f"({f['minutes_spanned']} minutes spanned), {f['per_day']} today; "
            f"violations {f['violations']}"
        )
        lines.append(f"         by priority {f['quota_by_priority']}; outcomes {f['outcomes']}")
    c.print_block("quota: processes hammering the port", cond, lines)

    ok = all(f["violations"] == 0 for f in results.values())
    day = results["day"]
    rows = [
        c.row(
            "quota: N processes hammering → calls seen upstream",
            "never more than the configured limits",
            f"{args.processes} processes: violations "
            + ", ".join(f"{n} {f['violations']}" for n, f in results.items())
            + f"; day phase {day['calls']} calls of {day['limits']['per_day']} "
            f"(scheduled {day['quota_by_priority'].get('HELD', 0)} ≤ "
            f"{day['limits']['per_day'] - day['limits']['interactive_reserve']}); "
            f"minute phase max {results['minute']['max_per_minute']}/min; shipped phase min gap "
            f"{results['shipped']['min_gap_s'] or 0:.2f} s; outage/slow phases "
            f"{results['outage']['max_per_minute']} a minute of "
            f"{results['outage']['limits']['per_minute']} / {results['slow']['calls']} a day of "
            f"{results['slow']['limits']['per_day']}",
            ok,
        )
    ]
    c.save("quota", {"conditions": cond, "phases": results, "rows": rows, "lines": lines})


def _config(limits: dict):
    import dataclasses

    from django.conf import settings

    return dataclasses.replace(settings.PAPERTRADE.quota, **limits)


if __name__ == "__main__":
    main()
