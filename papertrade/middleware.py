"""A database that stops answering is a clear 503 page, not a 500.

Every write is one ``transaction.atomic()`` block (``portfolios/services.py``), so a request
that fails because the database went away has changed nothing, and the page can say so.
"""

from __future__ import annotations

import logging
import sys

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.cache import add_never_cache_headers

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 30
_MARK = "_papertrade_database_unavailable"


def _mark_database_errors(sender, request: HttpRequest | None = None, **kwargs) -> None:
    """Django turns an exception raised in a middleware (the session lookup of
    ``LoginRequiredMiddleware``, a session save) into a 500 before it reaches us; it sends
    ``got_request_exception`` first, from inside the ``except`` block, so note it here."""
    if request is not None and isinstance(sys.exc_info()[1], DATABASE_ERRORS):
        setattr(request, _MARK, True)


def database_unavailable(request: HttpRequest) -> HttpResponse:
    # Rendered without the request: context processors would ask the database again.
    response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    add_never_cache_headers(response)
    return response


class DatabaseUnavailableMiddleware:
    """Answer 503 with ``templates/503.html`` when the database raises OperationalError or
    InterfaceError anywhere below this middleware (view or middleware)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        got_request_exception.connect(
            _mark_database_errors, dispatch_uid="papertrade.middleware.database_unavailable"
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, _MARK, False) and response.status_code == 500:
            # Django has logged the exception already ("Internal Server Error").
            return database_unavailable(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception):
        if isinstance(exception, DATABASE_ERRORS):
            logger.warning(
                "database unavailable during %s %s: %r", request.method, request.path, exception
            )
            return database_unavailable(request)
        return None
