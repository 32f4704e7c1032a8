"""Bulk import (PRODUCT §3.8, §7 row 8): ``manage.py import_prices --from-file`` with 1,000
tickers × 252 bars (1,000 files) and with one 1,000,000-row file: rows/s and peak memory.

    python bench/bulk_import.py [--rounds 3] [--big-rows 1000000] [--small-rows 100000]

Each import runs as its own ``manage.py`` process (as a person would run it) into an emptied
PostgreSQL table; its peak RSS is the kernel's VmHWM. Also timed: re-importing the
1,000 files (every row unchanged), and a 100,000-row file, to show whether memory is flat in
the file's size. The CSV files are generated once into var/bench-data/ and reused.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

DATA = c.ROOT / "var" / "bench-data"


def write_csv(path: Path, days: list[date], seed: str) -> None:
    if path.exists():
        return
    tmp = path.with_suffix(".tmp")
    closes = c.synthetic_closes(seed, len(days))
    with open(tmp, "w") as fh:
        fh.write("date,open,high,low,close,volume\n")
        for day, close in zip(days, closes, strict=True):
            fh.write(
                f"{day.isoformat()},{close * 0.998:.4f},{close * 1.01:.4f},{close * 0.99:.4f},"
                f"{close:.4f},{int(close * 10007) % 50_000_000 + 1000}\n"
            )
    tmp.rename(path)


def generate(big_rows: int, small_rows: int) -> tuple[list[Path], Path, Path]:
    many = DATA / "many"
    many.mkdir(parents=True, exist_ok=True)
    days = c.sessions(252)
    files = []
    for t in c.ticker_names(1000, prefix="I"):
        path = many / f"{t}.csv"
        write_csv(path, days, t)
        files.append(path)
    # A million rows need a million distinct dates: consecutive calendar days from 1000-01-01.
    first = date(1000, 1, 1)
    big = DATA / f"BIG{big_rows}.csv"
    write_csv(big, [first + timedelta(days=i) for i in range(big_rows)], "BIG")
    small = DATA / f"SMALL{small_rows}.csv"
    write_csv(small, [first + timedelta(days=i) for i in range(small_rows)], "SMALL")
    return files, big, small


def timed_import(paths: list[Path], rows: int, ticker: str | None = None) -> dict:
    """Run import_prices in its own process: wall time, rows/s, its peak RSS (VmHWM)."""
    cmd = [str(c.VENV_PYTHON), "manage.py", "import_prices", "--from-file", *map(str, paths)]
    if ticker:
        cmd += ["--ticker", ticker]
    out = c.RESULTS_DIR / "import.out"
    t0 = time.perf_counter()
    with open(out, "w") as fh:
        proc = subprocess.Popen(
            cmd, cwd=c.ROOT, env=c.bench_env(), stdout=fh, stderr=subprocess.STDOUT
        )
        # The kernel's high-water mark of the process's resident memory (VmHWM), read until it
        # exits. (rusage's ru_maxrss would count the parent's memory at fork time.)
        peak_kb = 0
        while True:
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
            except OSError:
                pass
            try:
                proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                continue
    wall = time.perf_counter() - t0
    output = out.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"import_prices failed ({proc.returncode}):\n{output[-3000:]}")
    return {
        "rows": rows,
        "wall_s": wall,
        "rows_per_s": rows / wall,
        "peak_rss_mb": peak_kb / 1024,
        "summary": output.strip().splitlines()[-1],
    }


def truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE marketdata_pricehistory RESTART IDENTITY")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=100_000)
    args = parser.parse_args()

    c.setup()
    c.reset_state()
    t0 = time.perf_counter()
    files, big, small = generate(args.big_rows, args.small_rows)
    gen_s = time.perf_counter() - t0
    cond = c.conditions()
    cond["dataset"] = (
        f"1,000 files × 252 rows ({sum(f.stat().st_size for f in files) / 1e6:.1f} MB); "
        f"one {args.big_rows:,}-row file ({big.stat().st_size / 1e6:.1f} MB); one "
        f"{args.small_rows:,}-row file; generated in {gen_s:.0f} s (cached in {DATA})"
    )
    runs: dict[str, list[dict]] = {"many": [], "many again": [], "big": [], "small": []}
    for rnd in range(args.rounds):
        truncate()
        runs["many"].append(timed_import(files, 252 * len(files)))
        runs["many again"].append(timed_import(files, 252 * len(files)))
        truncate()
        runs["big"].append(timed_import([big], args.big_rows, ticker="BIG"))
        truncate()
        runs["small"].append(timed_import([small], args.small_rows, ticker="SMALL"))
        print(
            f"   round {rnd + 1}: "
            + "; ".join(
                f"{k} {v[-1]['rows_per_s']:,.0f} rows/s {v[-1]['peak_rss_mb']:.0f} MB"
                for k, v in runs.items()
            ),
            flush=True,
        )
    truncate()

    def med(name, key):
        vals = [r[key] for r in runs[name]]
        return statistics.median(vals), min(vals), max(vals)

    lines = []
    labels = {
        "many": "1,000 files × 252 rows, into an empty table",
        "many again": "the same 1,000 files again (all unchanged)",
        "big": f"one {args.big_rows:,}-row file, into an empty table",
        "small": f"one {args.small_rows:,}-row file (for memory)",
    }
    for name, label in labels.items():
        rps, rmin, rmax = med(name, "rows_per_s")
        wall = med(name, "wall_s")[0]
        rss = med(name, "peak_rss_mb")
        lines.append(
            f"{label:45s} {rps:>9,.0f} rows/s ({rmin:,.0f}–{rmax:,.0f}), {wall:.1f} s, "
            f"peak RSS {rss[0]:.0f} MB ({rss[1]:.0f}–{rss[2]:.0f})"
        )
    lines.append(f"last summary line: {runs['big'][-1]['summary']}")
    c.print_block("bulk import: manage.py import_prices --from-file", cond, lines)

    many, big_ = med("many", "rows_per_s"), med("big", "rows_per_s")
    rss_big, rss_small = med("big", "peak_rss_mb")[0], med("small", "peak_rss_mb")[0]
    flat = rss_big <= rss_small * 1.25
    rows = [
        c.row(
            "bulk import into PostgreSQL: rows/s",
            "≥ 50,000 rows/s",
            f"1,000 × 252: {many[0]:,.0f} rows/s; 1,000,000-row file: {big_[0]:,.0f} rows/s",
            min(many[0], big_[0]) >= 50_000,
            f"{many[1]:,.0f}–{many[2]:,.0f}; {big_[1]:,.0f}–{big_[2]:,.0f}",
        ),
        c.row(
            "bulk import: memory",
            "flat in file size",
            f"peak RSS {rss_small:.0f} MB for {args.small_rows:,} rows, {rss_big:.0f} MB for "
            f"{args.big_rows:,} rows; 1,000 files {med('many', 'peak_rss_mb')[0]:.0f} MB",
            flat,
        ),
    ]
    c.save("bulk_import", {"conditions": cond, "runs": runs, "rows": rows, "lines": lines})


if __name__ == "__main__":
    main()
