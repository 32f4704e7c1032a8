"""Site-wide views: the health check and the error pages."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponseNotFound, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts import throttle
from accounts.models import LoginThrottle
from papertrade.postgresql.base import request_deadline

logger = logging.getLogger(__name__)


def _check_database() -> None:
    # Bounded like a request's own waits, so a stuck check frees its thread soon after the
    # answer was given up on (papertrade/postgresql/base.py; SQLite ignores it).
    with request_deadline(HEALTHZ_SECONDS), connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    key, token = "healthz:probe", uuid.uuid4().hex
    cache.set(key, token, timeout=10)
    if cache.get(key) != token:
        raise RuntimeError("the cache did not return what was written")


def _check_broker() -> None:
    from papertrade.celery import app

    # One attempt, no back-off: a refusal is an answer at once, and a broker that hangs is
    # bounded by its connect timeout ([timeouts] broker_seconds) and by HEALTHZ_SECONDS.
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0)


CHECKS = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}
HEALTHZ_SECONDS = 2.0  # /healthz answers within this, whatever hangs

# One thread per check, kept between calls: a check stuck on a dependency that hangs holds up
# only the next checks of that dependency (each reported "timeout"), never the others and never
# the web thread that asked.
_checkers = {
    name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"healthz-{name}") for name in CHECKS
}


def _in_checker(check):
    def run() -> None:
        from django.db import close_old_connections

        close_old_connections()  # this thread's connection, if the database dropped it
        check()

    return run


def _local_file(name: str) -> bool:
    """The check reads the embedded SQLite file (the database, or the cache table in it): a
    local file cannot hang on a network, and another thread's connection would queue behind
    this one's open transaction. Checked in the request's own thread."""
    if connection.vendor != "sqlite":
        return False
    backend = settings.CACHES["default"]["BACKEND"]
    return name == "database" or (name == "cache" and "DatabaseCache" in backend)


def _run_here(check) -> Future:
    done: Future = Future()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        done.set_exception(exc)
    else:
        done.set_result(None)
    return done


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """JSON status of the database, cache and broker: 200 when all answer, 503 otherwise;
    within HEALTHZ_SECONDS, naming a dependency that did not answer in time "timeout"."""
    deadline = time.monotonic() + HEALTHZ_SECONDS
    running = {
        name: _run_here(check) if _local_file(name) else _checkers[name].submit(_in_checker(check))
        for name, check in CHECKS.items()
    }
    status = {}
    for name, future in running.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            logger.warning("healthz: %s did not answer within %g s", name, HEALTHZ_SECONDS)
            status[name] = "timeout"
        except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
            logger.warning("healthz: %s check failed: %s", name, type(exc).__name__)
            status[name] = "error"
        else:
            status[name] = "ok"
    healthy = all(v == "ok" for v in status.values())
    body = {"status": "ok" if healthy else "error", "checks": status}
    if settings.DEBUG:
        body["debug"] = True
    return JsonResponse(body, status=200 if healthy else 503)


# What ``get_object_or_404`` says: it names a model, and the page must not tell "not yours"
# from "not there".
_ORM_NOT_FOUND = " matches the given query."


def page_not_found(request: HttpRequest, exception: Exception | None = None):
    """The 404 page, with the specific reason it was raised with (``Http404("No stored prices
    for BAC.")``), or the general one when none was given."""
    reason = ""
    if exception is not None and exception.args and isinstance(exception.args[0], str):
        reason = exception.args[0]
        if reason.endswith(_ORM_NOT_FOUND):
            reason = ""
    body = loader.render_to_string("404.html", {"reason": reason}, request)
    return HttpResponseNotFound(body)


class LoginView(auth_views.LoginView):
    """Django's log-in, refused (429) while a pause applies to this account, this address, or
    the two together (``accounts.throttle``); the password is not checked then."""

    def post(self, request, *args, **kwargs):
        pause = throttle.paused(request, request.POST.get("username"))
        if pause is not None:
            scope = LoginThrottle.Scope(pause.scope).label
            logger.warning("log-in refused unchecked: paused for this %s", scope)
            return self._paused(pause)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        """The wrong password that starts a pause says so at once, not at the next try."""
        pause = throttle.paused(self.request, self.request.POST.get("username"))
        return self._paused(pause) if pause is not None else super().form_invalid(form)

    def _paused(self, pause: throttle.Pause):
        context = {
            "pause": pause,
            "username": self.request.POST.get("username"),
            "scopes": LoginThrottle.Scope,
        }
        return render(self.request, "registration/locked_out.html", context, status=429)
