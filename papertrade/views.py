"""Site-wide views: the health check and the error pages."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponseNotFound, JsonResponse
from django.template import loader
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    key, token = "healthz:probe", uuid.uuid4().hex
    cache.set(key, token, timeout=10)
    if cache.get(key) != token:
        raise RuntimeError("the cache did not return what was written")


def _check_broker() -> None:
    from papertrade.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


CHECKS = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """JSON status of the database, cache and broker: 200 when all answer, 503 otherwise."""
    status = {}
    for name, check in CHECKS.items():
        try:
            check()
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
