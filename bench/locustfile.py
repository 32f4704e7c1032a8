"""Locust users for bench/load.py: each is one logged-in person on their own portfolio page.

Run by bench/load.py (which starts gunicorn, makes the users and their sessions, and passes
them in ``BENCH_SESSIONS``, a JSON file of ``[{"cookie": ..., "pk": ...}, ...]``). Runs in the
bench's own virtualenv (var/bench-venv), not the app's: it imports nothing from Django.

``BENCH_PACING`` chooses the think time: "product" (27–33 s between requests, as the page
polls with the configured 30 s interval), "paced" (0.5–1.5 s: each person's page polls about 30
times faster than configured) or "flat" (none: as fast as the server answers).
"""

from __future__ import annotations

import itertools
import json
import os

from locust import FastHttpUser, between, constant, task

SESSIONS = json.loads(open(os.environ["BENCH_SESSIONS"]).read())  # noqa: SIM115, PTH123
_next = itertools.count()
PACING = os.environ.get("BENCH_PACING", "paced")


class PortfolioViewer(FastHttpUser):
    wait_time = {"product": between(27, 33), "paced": between(0.5, 1.5)}.get(PACING, constant(0))
    # Keep connections open like a browser does; one connection per user.
    concurrency = 1

    def on_start(self) -> None:
        me = SESSIONS[next(_next) % len(SESSIONS)]
        self.pk = me["pk"]
        self.headers = {"Cookie": f"sessionid={me['cookie']}"}
        self.page()

    @task(1)
    def page(self) -> None:
        with self.client.get(
            f"/portfolios/{self.pk}/",
            headers=self.headers,
            name="portfolio page",
            catch_response=True,
        ) as response:
            if response.status_code != 200 or b'id="holdings"' not in (response.content or b""):
                response.failure(f"status {response.status_code}")

    @task(4)
    def live(self) -> None:
        with self.client.get(
            f"/portfolios/{self.pk}/live/",
            headers={**self.headers, "HX-Request": "true"},
            name="live partial (poll)",
            catch_response=True,
        ) as response:
            if response.status_code != 200 or b'id="live"' not in (response.content or b""):
                response.failure(f"status {response.status_code}")
