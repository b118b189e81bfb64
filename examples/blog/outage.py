"""What the example apps answer when the database cannot serve a request.

Shared by the Flask and Django blogs (each has one error handler that uses
it). Every region failed (``AllRegionsFailed``): nothing was read or
written, so ``503 Service Unavailable`` with ``Retry-After``. A write whose
outcome is unknown (``AmbiguousWriteError``): it may have been applied, so
``504 Gateway Timeout`` without ``Retry-After``, and a page that says to
check before sending it again.
"""

from __future__ import annotations

RETRY_AFTER = 5  # seconds: about one breaker trial; load balancers move users meanwhile

_PAGE = (
    "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{title}</title>"
    "<h1>{title}</h1><p>{text}</p></html>\n"
)


def unavailable_page() -> str:
    return _PAGE.format(
        title="Temporarily unavailable",
        text=f"The blog cannot reach its database right now. Please try again in {RETRY_AFTER} seconds.",
    )


def ambiguous_write_page() -> str:
    return _PAGE.format(
        title="Your change may not have been saved",
        text="The database did not confirm your change in time. Reload the page to see whether it was saved "
        "before you send it again.",
    )
