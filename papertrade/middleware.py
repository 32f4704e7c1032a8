"""A database that stops answering is a clear 503 page, not a 500, and a quiet log.

Every write is one ``transaction.atomic()`` block (``portfolios/services.py``), so a request
that fails before any of its writes went through has changed nothing, and the page says so; one
that fails after one did (the session saved after an order, say) says the action may have been
saved. Each such request logs one WARNING line, with no traceback; the first of an outage, per
process, logs an ERROR, and the first request that gets through again says the outage is over.
"""

from __future__ import annotations

import logging
import sys
import threading

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.cache import add_never_cache_headers

from marketdata.budget import request_started
from papertrade.postgresql.base import commit_outcome_unknown, request_deadline

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 30
_MARK = "_papertrade_database_unavailable"


def _mark_database_errors(sender, request: HttpRequest | None = None, **kwargs) -> None:
    """Django turns an exception raised in a middleware (the session lookup of
    ``LoginRequiredMiddleware``, a session save) into a 500 before it reaches us; it sends
    ``got_request_exception`` first, from inside the ``except`` block, so note it here."""
    if request is not None and isinstance(sys.exc_info()[1], DATABASE_ERRORS):
        setattr(request, _MARK, sys.exc_info()[1])


# Tables whose rows are the app's own bookkeeping, not what a person did: writing them (the
# database cache, a session touched, the log-in log) does not make an action "saved".
BOOKKEEPING_TABLES = ("papertrade_cache", "django_session", "accounts_loginthrottle")
_WRITES = ("INSERT", "UPDATE", "DELETE")


class _Outage:
    """This process's view of a database outage: ERROR once when it starts, WARNING per request
    while it lasts, one line when a request gets through again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.on = False

    def failed(self, request: HttpRequest, exception: BaseException) -> None:
        with self._lock:
            first, self.on = not self.on, True
        what = f"{type(exception).__name__}: {exception}".strip()
        if first:
            logger.error("the database stopped answering (%s); answering 503 until it does", what)
        logger.warning(
            "database unavailable: %s %s answered 503 (%s)", request.method, request.path, what
        )

    def answered(self) -> None:
        if self.on:
            with self._lock:
                was, self.on = self.on, False
            if was:
                logger.warning("the database answers again")


outage = _Outage()


def database_unavailable(request: HttpRequest) -> HttpResponse:
    # Rendered without the request: context processors would ask the database again.
    saved = bool(getattr(request, "_papertrade_writes", None)) or commit_outcome_unknown()
    response = HttpResponse(render_to_string("503.html", {"maybe_saved": saved}), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    add_never_cache_headers(response)
    return response


class DatabaseUnavailableMiddleware:
    """Answer 503 with ``templates/503.html`` when the database raises OperationalError or
    InterfaceError anywhere below this middleware (view or middleware), noting whether any of
    the request's writes had gone through."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        got_request_exception.connect(
            _mark_database_errors, dispatch_uid="papertrade.middleware.database_unavailable"
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        writes: list[str] = []
        request._papertrade_writes = writes

        def note_writes(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            head = sql.lstrip()[:6].upper()
            if head in _WRITES and not any(t in sql for t in BOOKKEEPING_TABLES):
                if connection.in_atomic_block:  # saved only once its transaction commits
                    transaction.on_commit(lambda: writes.append(head))
                else:
                    writes.append(head)
            return result

        budget = settings.PAPERTRADE.timeouts.web_statement_seconds
        commit_outcome_unknown(clear=True)
        with (
            request_started(),  # the market-data wait counts from here
            request_deadline(budget),
            connection.execute_wrapper(note_writes),
        ):
            response = self.get_response(request)
        error = getattr(request, _MARK, None)
        if error is not None and response.status_code == 500:
            # Django logged nothing of it: papertrade.logging.QuietDatabaseErrors drops its
            # "Internal Server Error" record for a database error.
            outage.failed(request, error)
            return database_unavailable(request)
        if response.status_code != 503:
            outage.answered()
        return response

    def process_exception(self, request: HttpRequest, exception: Exception):
        if isinstance(exception, DATABASE_ERRORS):
            outage.failed(request, exception)
            return database_unavailable(request)
        return None


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Django's, asking the view first: a page anyone may see (the log-in page, ``/healthz``)
    does not load the session and the user from the database just to learn that."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not getattr(view_func, "login_required", True):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
