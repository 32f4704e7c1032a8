"""Quota (PRODUCT §3.4, §7 row 7): several processes hammering the price port → upstream calls
per second, per minute and per day counted by the fake Alpha Vantage, which enforces the same
limits and counts every call that broke one.

    python bench/quota.py [--processes 6] [--quick] [--actions-wait SECONDS]

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
to 2.5 s for the spacing) with scheduled work, which itself alternates a price refresh
(Upstream.fetch at HELD priority, waiting up to 1 s) and a fetch of splits and dividends
(Upstream.fetch_actions at HELD priority: SPLITS then DIVIDENDS, two quota takes, each waiting
up to the spacing + 1 s as refresh.fetch_actions does; --actions-wait changes that). So one
round is: person, scheduled prices, person, scheduled actions (each process starts at its own
place in it). The ticker names say which kind of work made each call (QS0I1: interactive, QS0H2:
scheduled prices, QS0A4: actions), so the calls the fake saw are counted by function and by
kind. Judged per phase: the fake saw no violation; the scheduled calls it saw (prices, SPLITS
and DIVIDENDS together) stayed within the scheduled share (per_day - interactive_reserve), and
none of them came after the day's first per_day - interactive_reserve calls (the reserve went to
people only); and a person was refused for the day only once the whole day, reserve included,
was spent. In the failing phases the breaker is kept out of the way (failures_to_open = 1000),
so that only the quota stands between the load and the provider.
"""

from __future__ import annotations

import argparse
import json
import re
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
# One round of a process's loop: a person, scheduled prices, a person, scheduled actions.
ROTATION = ("interactive", "scheduled", "interactive", "actions")
LETTER = {"interactive": "I", "scheduled": "H", "actions": "A"}
KIND_OF_LETTER = {v: k for k, v in LETTER.items()}
TICKER = re.compile(r"^Q[A-Z]\d+([IHA])\d+$")
FUNCTIONS = ("TIME_SERIES_DAILY", "GLOBAL_QUOTE", "SPLITS", "DIVIDENDS")


def child(name: str, index: int, seconds: float, actions_wait: float) -> None:
    c.setup(child=True, migrate=False)
    from marketdata.port import MarketDataError, RateLimited
    from marketdata.quota import Priority
    from marketdata.wiring import get_market_data

    port = get_market_data()
    port.due_session()  # the calendar, built before the start
    c.wait_for_go()
    start_at = time.time()
    outcomes: Counter[str] = Counter()
    i = index % len(ROTATION)  # staggered: every kind of work is in flight from the start
    while time.time() < start_at + seconds:
        kind = ROTATION[i % len(ROTATION)]
        ticker = f"Q{name[0].upper()}{index}{LETTER[kind]}{i}"
        i += 1
        try:
            if kind == "interactive":
                port.upstream.fetch(ticker, priority=Priority.INTERACTIVE)
            elif kind == "scheduled":
                port.upstream.fetch(ticker, priority=Priority.HELD, wait=1.0)
            else:
                port.upstream.fetch_actions(ticker, priority=Priority.HELD, wait=actions_wait)
            outcomes[f"{kind} ok"] += 1
        except RateLimited as exc:
            outcomes[f"{kind} refused ({exc.scope})"] += 1
            time.sleep(0.05)  # hammering, not spinning
        except MarketDataError as exc:
            said = "retry refused" if "not retried" in str(exc) else type(exc).__name__
            outcomes[f"{'actions ' if kind == 'actions' else ''}error {said}"] += 1
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


def by_function_and_kind(arrivals) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Calls the fake saw by function, and by kind of work (from the ticker's letter) and
    function."""
    functions: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = {}
    for a in arrivals:
        functions[a.function] += 1
        m = TICKER.match(a.symbol.upper())
        kind = KIND_OF_LETTER[m.group(1)] if m else "other"
        kinds.setdefault(kind, Counter())[a.function] += 1
    return dict(functions), {k: dict(v) for k, v in kinds.items()}


def scheduled_in_reserve(arrivals, share: int) -> int:
    """Scheduled calls (prices, SPLITS, DIVIDENDS) that arrived after the day's first ``share``
    calls, in the calls kept for people. (Arrival order is take order give or take the few ms
    between a take and its request: less than the spacing, which the fake checks.)"""
    seen: Counter = Counter()
    late = 0
    for a in sorted(arrivals, key=lambda a: a.monotonic):
        day = datetime.fromtimestamp(a.wall, UTC).date()
        seen[day] += 1
        m = TICKER.match(a.symbol.upper())
        if m and KIND_OF_LETTER[m.group(1)] != "interactive" and seen[day] > share:
            late += 1
    return late


def judge(fig: dict) -> dict[str, bool]:
    """The phase's checks: no violation; scheduled work (prices and actions together) within
    the scheduled share, and never in the calls kept for people; a person refused for the day
    only once the whole day, reserve included, was spent."""
    lim = fig["limits"]
    share = lim["per_day"] - lim["interactive_reserve"]
    people_refused_day = fig["outcomes"].get("interactive refused (day)", 0)
    return {
        "no violations": fig["violations"] == 0,
        "scheduled within share": fig["scheduled_calls"] <= share
        and fig["quota_by_priority"].get("HELD", 0) <= share,
        "reserve left to people": fig["scheduled_in_reserve"] == 0,
        "people refused only when the day was spent": people_refused_day == 0
        or fig["per_day"] >= lim["per_day"],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="halve the phases' durations")
    parser.add_argument(
        "--actions-wait",
        type=float,
        default=None,
        help="seconds each SPLITS/DIVIDENDS take waits for the quota (default: the phase's "
        "spacing + 1 s, as the scheduled refresh's fetch_actions waits)",
    )
    args = parser.parse_args()

    c.setup()
    c.reset_state()
    from django_redis import get_redis_connection

    from marketdata.quota import Priority, RedisQuota
    from marketdata.refresh import SPACING_WAIT_SLACK
    from marketdata.testing import FakeAlphaVantage

    cond = c.conditions()
    cond["processes"] = (
        f"{args.processes} processes, each looping: interactive fetch, scheduled fetch (HELD, "
        "wait 1 s), interactive fetch, scheduled fetch_actions (HELD: SPLITS + DIVIDENDS, wait "
        + (
            f"{args.actions_wait:g} s)"
            if args.actions_wait is not None
            else f"spacing + {SPACING_WAIT_SLACK:g} s)"
        )
    )
    redis = get_redis_connection("default")
    results = {}
    with FakeAlphaVantage() as fake:
        for name, (limits, seconds) in PHASES.items():
            seconds = seconds / 2 if args.quick else seconds
            actions_wait = (
                args.actions_wait
                if args.actions_wait is not None
                else limits["min_seconds_between_calls"] + SPACING_WAIT_SLACK
            )
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
                    [
                        str(c.VENV_PYTHON),
                        __file__,
                        "--child",
                        name,
                        str(i),
                        str(seconds),
                        str(actions_wait),
                    ]
                    for i in range(args.processes)
                ],
                env,
            )
            c.go(procs)
            outcomes: Counter[str] = Counter()
            for line in c.collect(procs, timeout=seconds + 120):
                outcomes.update(json.loads(line))
            arrivals = fake.arrivals
            fig = windows([a.wall for a in arrivals])
            functions, kinds = by_function_and_kind(arrivals)
            status = RedisQuota(config=_config(limits)).status()
            fig |= {
                "by_function": functions,
                "by_kind": kinds,
                "scheduled_calls": sum(
                    n for k in ("scheduled", "actions") for n in kinds.get(k, {}).values()
                ),
                "scheduled_in_reserve": scheduled_in_reserve(
                    arrivals, limits["per_day"] - limits["interactive_reserve"]
                ),
                "actions_wait": actions_wait,
                "violations": fake.violations,
                "violation_log": [v.detail for v in fake.violation_log][:10],
                "outcomes": dict(outcomes),
                "quota_by_priority": {
                    Priority(p).name: n for p, n in status.used_day_by_priority.items()
                },
                "limits": limits,
                "seconds": seconds,
            }
            fig["checks"] = judge(fig)
            results[name] = fig
            print(
                f"   {name}: {fig['calls']} upstream calls {fig['by_function']}, "
                f"{fig['violations']} violations",
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
        called = ", ".join(f"{fn} {f['by_function'].get(fn, 0)}" for fn in FUNCTIONS)
        others = sorted(set(f["by_function"]) - set(FUNCTIONS))
        called += "".join(f", {fn} {f['by_function'][fn]}" for fn in others)
        lines.append(
            f"         by function: {called}; by kind {f['by_kind']}; scheduled "
            f"{f['scheduled_calls']} of a share of "
            f"{lim['per_day'] - lim['interactive_reserve']} ({f['scheduled_in_reserve']} in "
            "the reserve)"
        )
        lines.append(f"         by priority {f['quota_by_priority']}; outcomes {f['outcomes']}")
        failed = [k for k, passed in f["checks"].items() if not passed]
        lines.append(f"         checks: {'all passed' if not failed else 'FAILED ' + str(failed)}")
    c.print_block("quota: processes hammering the port", cond, lines)

    ok = all(all(f["checks"].values()) for f in results.values())
    day = results["day"]
    rows = [
        c.row(
            "quota: N processes hammering → calls seen upstream",
            "never more than the configured limits",
            f"{args.processes} processes: violations "
            + ", ".join(f"{n} {f['violations']}" for n, f in results.items())
            + f"; day phase {day['calls']} calls of {day['limits']['per_day']} "
            f"(scheduled {day['quota_by_priority'].get('HELD', 0)} ≤ "
            f"{day['limits']['per_day'] - day['limits']['interactive_reserve']}, of which "
            f"SPLITS {day['by_function'].get('SPLITS', 0)} + DIVIDENDS "
            f"{day['by_function'].get('DIVIDENDS', 0)}); actions ok "
            + ", ".join(f"{n} {f['outcomes'].get('actions ok', 0)}" for n, f in results.items())
            + "; "
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
