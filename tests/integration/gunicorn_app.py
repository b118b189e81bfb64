"""A WSGI app for gunicorn with the sidecar's worker class: ``/slow``
writes the file ``REGIONPROXY_TEST_ENTERED`` names, then answers after a
second (a request in flight when the worker is told to stop); any other
path answers its worker's pid."""

from __future__ import annotations

import os
import time
from typing import Any


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ["PATH_INFO"] == "/slow":
        with open(os.environ["REGIONPROXY_TEST_ENTERED"], "w", encoding="utf-8") as marker:
            marker.write(str(os.getpid()))
        time.sleep(1.0)  # the fault under test: a request still running at SIGTERM
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
