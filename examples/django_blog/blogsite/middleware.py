"""The blog's answer when no region can serve: one ``process_exception`` hook.

``AllRegionsFailed`` (nothing was read or written) becomes a 503 with
``Retry-After`` and a short page; ``AmbiguousWriteError`` (the write may
have been applied) a 504 that says to check before sending it again.
Without this, Django logs a traceback and answers a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from blog.outage import RETRY_AFTER, ambiguous_write_page, unavailable_page
from django.http import HttpRequest, HttpResponse

from regionproxy import AllRegionsFailed, AmbiguousWriteError

logger = logging.getLogger(__name__)


class RegionOutageMiddleware:
    """Turns regionproxy's outage errors raised by a view into short pages."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, AmbiguousWriteError):
            logger.warning("%s %s: %s", request.method, request.path, exception)
            return HttpResponse(ambiguous_write_page(), status=504, content_type="text/html; charset=utf-8")
        if isinstance(exception, AllRegionsFailed):
            logger.warning("%s %s: %s", request.method, request.path, exception)
            response = HttpResponse(unavailable_page(), status=503, content_type="text/html; charset=utf-8")
            response["Retry-After"] = str(RETRY_AFTER)
            return response
        return None  # anything else: Django's own handling
