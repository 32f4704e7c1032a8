"""Lighthouse scores of the pages a person meets, and what the portfolio page costs over the wire.

A fresh set-up on the embedded defaults (SQLite, the database cache, no key: the offline demo),
served the way the Procfile serves it (gunicorn, DEBUG off, WhiteNoise with the files that
`collectstatic` hashed and compressed). A user with a portfolio of several holdings is logged
in; Lighthouse 12 (npm, installed into var/lighthouse on first use) runs Debian's Chromium on
the landing, log-in, dashboard, portfolio and stock pages with its default mobile and desktop
settings, and prints the four category scores of each. Then a real Chromium loads the portfolio
page twice and sums the bytes that crossed the wire: the first visit, and the repeat visit with
the browser's cache.

    .venv/bin/python bench/lighthouse.py            # every page, mobile and desktop
    .venv/bin/python bench/lighthouse.py --pages portfolio --forms mobile

Needs Node.js and npm (the npm registry) and /usr/bin/chromium; never downloads a browser.
Targets (issue "pages that load fast on a phone"): performance ≥ 90 on mobile and ≥ 95 on
desktop, accessibility, best practices and SEO 100; the portfolio page ≤ 600 KB on a first
visit and ≤ 50 KB on a repeat visit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

LIGHTHOUSE_VERSION = "12.8.2"
LIGHTHOUSE_DIR = c.ROOT / "var" / "lighthouse"
LIGHTHOUSE = LIGHTHOUSE_DIR / "node_modules" / ".bin" / "lighthouse"
CHROMIUM = "/usr/bin/chromium"
CHROME_FLAGS = "--headless --no-sandbox --disable-gpu --disable-background-networking"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
TARGETS = {
    ("mobile", "performance"): 90,
    ("desktop", "performance"): 95,
    "accessibility": 100,
    "best-practices": 100,
    "seo": 100,
}
FIRST_VISIT_KB, REPEAT_VISIT_KB = 600, 50
PASSWORD = "a-bench-only-passphrase-1"
ATTEMPTS = 3

SETUP = f"""
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.core.management import call_command
from portfolios.services import portfolio_buy, portfolio_create

call_command("migrate", verbosity=0)
call_command("load_demo_prices", verbosity=0)
user = get_user_model().objects.create_user(username="lighthouse", password={PASSWORD!r})
p = portfolio_create(owner=user, name="Long term", opening_deposit=Decimal("50000"))
for ticker, quantity in [("AAPL", "20"), ("MSFT", "8"), ("NVDA", "25"), ("JPM", "10"),
                         ("XOM", "30"), ("V", "6"), ("BRK.B", "4"), ("NFLX", "12")]:
    portfolio_buy(portfolio=p, ticker=ticker, quantity=Decimal(quantity))
print("PORTFOLIO", p.pk)
"""


def ensure_lighthouse() -> None:
    if LIGHTHOUSE.exists():
        return
    LIGHTHOUSE_DIR.mkdir(parents=True, exist_ok=True)
    print(f"installing lighthouse@{LIGHTHOUSE_VERSION} into {LIGHTHOUSE_DIR.relative_to(c.ROOT)}")
    subprocess.run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            f"lighthouse@{LIGHTHOUSE_VERSION}",
        ],
        cwd=LIGHTHOUSE_DIR,
        check=True,
    )


def app_env(workdir: Path) -> dict[str, str]:
    """The embedded defaults, in a folder of their own: SQLite, the database cache, the
    filesystem broker, no key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    for name in ("ALPHA_VANTAGE_API_KEY", "CELERY_BROKER_URL", "PAPERTRADE_CONFIG",
                 "PAPERTRADE_PLAIN_STATIC"):  # fmt: skip
        env.pop(name, None)
    env.update(
        DJANGO_SETTINGS_MODULE="papertrade.settings",
        DEBUG="false",
        DATABASE_URL=f"sqlite:///{workdir / 'app.sqlite3'}",
        STATIC_ROOT=str(workdir / "staticfiles"),
    )
    return env


def log_in(url: str) -> str:
    """A session cookie for the bench's user, through the log-in form."""
    import requests

    session = requests.Session()
    session.get(url + "/accounts/login/", timeout=10)
    response = session.post(
        url + "/accounts/login/",
        data={
            "username": "lighthouse",
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, f"log-in failed: {response.status_code}"
    return session.cookies["sessionid"]


def lighthouse(url: str, form: str, cookie: str | None, out: Path) -> dict:
    """Lighthouse's four scores (0-100) of ``url`` in its default ``form`` settings."""
    args = [
        str(LIGHTHOUSE),
        url,
        "--quiet",
        "--output=json",
        f"--output-path={out}",
        f"--chrome-flags={CHROME_FLAGS}",
        "--only-categories=" + ",".join(CATEGORIES),
    ]
    if form == "desktop":
        args.append("--preset=desktop")
    if cookie:
        args.append("--extra-headers=" + json.dumps({"Cookie": f"sessionid={cookie}"}))
    for attempt in range(1, ATTEMPTS + 1):
        # Lighthouse sometimes loses its trace on a busy machine ("NO_NAVSTART"): run again.
        done = subprocess.run(args, env={**os.environ, "CHROME_PATH": CHROMIUM}, timeout=240)
        if done.returncode == 0:
            break
        if attempt == ATTEMPTS:
            raise RuntimeError(f"lighthouse failed {ATTEMPTS} times on {url} ({form})")
    report = json.loads(out.read_text())
    scores = {k: round(report["categories"][k]["score"] * 100) for k in CATEGORIES}
    failing = [
        f"{a['id']}: {a['title']}"
        for cat in ("best-practices", "seo", "accessibility")
        for ref in report["categories"][cat]["auditRefs"]
        if ref["weight"]
        and (a := report["audits"][ref["id"]])["score"] is not None
        and a["score"] < 1
    ]
    return {
        "scores": scores,
        "failing": failing,
        "fcp_ms": report["audits"]["first-contentful-paint"]["numericValue"],
        "lcp_ms": report["audits"]["largest-contentful-paint"]["numericValue"],
        "tbt_ms": report["audits"]["total-blocking-time"]["numericValue"],
        "bytes": report["audits"]["total-byte-weight"]["numericValue"],
    }


def wire_bytes(url: str, cookie: str) -> tuple[int, int]:
    """Bytes over the wire for a first visit of ``url`` and for a repeat visit, in Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_FLAGS.split())
        context = browser.new_context()
        host = url.split("//", 1)[1].split("/", 1)[0].split(":")[0]
        context.add_cookies([{"name": "sessionid", "value": cookie, "domain": host, "path": "/"}])
        page = context.new_page()
        totals = []
        for _ in range(2):
            page.goto(url, wait_until="networkidle")
            page.wait_for_timeout(500)  # the chart library comes after the page's load
            totals.append(
                page.evaluate(
                    """() => performance.getEntriesByType("navigation")
                        .concat(performance.getEntriesByType("resource"))
                        .reduce((sum, e) => sum + (e.transferSize || 0), 0)"""
                )
            )
        browser.close()
    return totals[0], totals[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = ("landing", "login", "dashboard", "portfolio", "stock")
    parser.add_argument("--pages", nargs="+", choices=names, default=list(names))
    parser.add_argument("--forms", nargs="+", choices=("mobile", "desktop"),
                        default=["mobile", "desktop"])  # fmt: skip
    args = parser.parse_args()
    ensure_lighthouse()

    with tempfile.TemporaryDirectory(prefix="pt-lighthouse-") as tmp:
        workdir = Path(tmp)
        env = app_env(workdir)
        run = [sys.executable, str(c.ROOT / "manage.py")]
        subprocess.run([*run, "collectstatic", "--noinput", "-v0"], cwd=c.ROOT, env=env, check=True)
        out = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()\n" + SETUP],
            cwd=c.ROOT, env=env, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        portfolio = int(out.split("PORTFOLIO")[1].split()[0])
        paths = {
            "landing": ("/", False),
            "login": ("/accounts/login/", False),
            "dashboard": ("/", True),
            "portfolio": (f"/portfolios/{portfolio}/", True),
            "stock": ("/stocks/NVDA/", True),
        }
        results: dict[str, dict] = {}
        with c.Gunicorn(env=env, log=workdir / "gunicorn.log") as web:
            cookie = log_in(web.url)
            for name in args.pages:
                path, logged_in = paths[name]
                for form in args.forms:
                    started = time.monotonic()
                    result = lighthouse(
                        web.url + path, form, cookie if logged_in else None,
                        workdir / f"{name}-{form}.json",
                    )  # fmt: skip
                    result["seconds"] = round(time.monotonic() - started, 1)
                    results[f"{name} {form}"] = result
            first, repeat = wire_bytes(web.url + paths["portfolio"][0], cookie)

    lines, rows = [], []
    for key, r in results.items():
        form = key.split()[-1]
        s = r["scores"]
        misses = [
            cat for cat in CATEGORIES if s[cat] < TARGETS.get((form, cat), TARGETS.get(cat, 0))
        ]
        lines.append(
            f"{key:18} performance {s['performance']:3}  accessibility {s['accessibility']:3}  "
            f"best practices {s['best-practices']:3}  SEO {s['seo']:3}   "
            f"FCP {r['fcp_ms'] / 1000:.1f} s  LCP {r['lcp_ms'] / 1000:.1f} s  "
            f"TBT {r['tbt_ms']:.0f} ms  {r['bytes'] / 1024:.0f} KB"
            + (f"   MISS: {', '.join(misses)}" if misses else "")
        )
        for failing in r["failing"]:
            lines.append(f"{'':18}   failing audit: {failing}")
        rows.append(c.row(f"Lighthouse {key}", "see TARGETS", json.dumps(s), not misses))
    lines.append(
        f"portfolio page over the wire: first visit {first / 1024:.0f} KB "
        f"(target ≤ {FIRST_VISIT_KB} KB), repeat visit {repeat / 1024:.1f} KB "
        f"(target ≤ {REPEAT_VISIT_KB} KB)"
    )
    cond = {
        "machine": f"{os.cpu_count()} cores, {c.load_average()} load at the end",
        "code": c.git_state(),
        "served by": "gunicorn 4 × 2, DEBUG off, WhiteNoise (collectstatic: hashed, br/gzip)",
        "data": "offline demo (20 stocks), a portfolio of 8 holdings",
        "lighthouse": f"{LIGHTHOUSE_VERSION}, Debian Chromium, default mobile / desktop settings",
    }
    c.print_block("Lighthouse", cond, lines)
    c.save("lighthouse", {"conditions": cond, "results": results, "rows": rows,
                          "wire": {"first": first, "repeat": repeat}})  # fmt: skip


if __name__ == "__main__":
    main()
