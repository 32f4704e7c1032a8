"""Run every bench script and write bench/results/summary.md: PRODUCT §7's targets against what
was measured, with the conditions.

    python bench/run_all.py            # the quick profile `make bench` runs (several minutes)
    python bench/run_all.py --full     # more rounds: the figures in docs/performance.md
    python bench/run_all.py --only price_port portfolio_page

Each script runs in its own process; a script that fails is reported and the others still run.
The exit status is 0 when every script ran (a missed target is a finding, not a crash).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

# script → (quick arguments, full arguments)
SCRIPTS = {
    "price_port": (["--rounds", "3"], ["--rounds", "7"]),
    "portfolio_page": (
        ["--rounds", "3", "--requests", "50"],
        ["--rounds", "5", "--requests", "100"],
    ),
    "value_over_time": (["--quick"], ["--rounds", "7"]),
    "orders": (["--quick"], []),
    "load": (
        ["--rounds", "2", "--flat-rounds", "1", "--run-time", "20s"],
        ["--rounds", "3", "--flat-rounds", "2", "--run-time", "30s"],
    ),
    "stampede": (["--rounds", "3", "--http-rounds", "2"], ["--rounds", "5", "--http-rounds", "3"]),
    "quota": (["--quick"], []),
    "slow_provider": (["--seconds", "30"], ["--seconds", "60"]),
    "bulk_import": (["--rounds", "1"], ["--rounds", "3"]),
    "thousand_tickers": (["--quick"], ["--rounds", "5"]),
    "two_nodes": (["--seconds", "10"], ["--seconds", "20"]),
    "lighthouse": ([], []),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--only", nargs="*", choices=list(SCRIPTS), default=None)
    args = parser.parse_args()
    names = args.only or list(SCRIPTS)
    c.RESULTS_DIR.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    status: dict[str, str] = {}
    durations: dict[str, float] = {}
    for name in names:
        extra = SCRIPTS[name][1 if args.full else 0]
        result = c.RESULTS_DIR / f"{name}.json"
        result.unlink(missing_ok=True)
        print(f"\n### {name} {' '.join(extra)}", flush=True)
        t0 = time.monotonic()
        log = c.RESULTS_DIR / f"{name}.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen(
                [sys.executable, str(c.BENCH_DIR / f"{name}.py"), *extra],
                cwd=c.ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for line in proc.stdout:
                fh.write(line)
                noise = line.startswith(("20", "/")) or "UserWarning" in line
                if not noise and "mw_instance" not in line:
                    sys.stdout.write(line)  # the figures, not log lines and warnings
            proc.wait()
        durations[name] = time.monotonic() - t0
        status[name] = (
            "ok"
            if proc.returncode == 0 and result.exists()
            else (f"failed (exit {proc.returncode}; see {log.relative_to(c.ROOT)})")
        )
    write_summary(names, status, durations, started, full=args.full)
    print(f"\nSummary: {(c.RESULTS_DIR / 'summary.md').relative_to(c.ROOT)}")
    sys.exit(0 if all(s == "ok" for s in status.values()) else 1)


def write_summary(names, status, durations, started, *, full: bool) -> None:
    lines = [
        "# Benchmark summary",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC, profile {'full' if full else 'quick'} "
        f"(`python bench/run_all.py{' --full' if full else ''}`), "
        f"{sum(durations.values()) / 60:.1f} minutes.",
        "",
        "| what | target (PRODUCT §7) | measured (medians) | met | spread over runs |",
        "|---|---|---|---|---|",
    ]
    details = []
    conditions = None
    for name in names:
        path = c.RESULTS_DIR / f"{name}.json"
        if status[name] != "ok":
            lines.append(f"| {name} | | **{status[name]}** | | |")
            continue
        data = json.loads(path.read_text())
        conditions = conditions or data.get("conditions")
        for r in data["rows"]:
            met = {True: "yes", False: "**no**", None: "—"}[r["ok"]]
            lines.append(
                f"| {r['what']} | {r['target']} | {r['measured']} | {met} | {r.get('spread', '')} |"
            )
        details += [f"## {name} ({durations[name]:.0f} s)", "", "```"]
        details += [f"{k}: {v}" for k, v in data.get("conditions", {}).items()]
        details += ["--", *data.get("lines", []), "```", ""]
    lines += [
        "",
        "The machine is shared: other work running at the same time slows every figure "
        "(the load average at each script's start is in its conditions). Each figure is the "
        "median over the runs; the spread column gives the range of the runs' medians.",
        "",
        *details,
    ]
    (c.RESULTS_DIR / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
