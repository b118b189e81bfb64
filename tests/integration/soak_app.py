"""The Flask blog example (``examples/flask_blog``) as the soak runs it
under gunicorn: unchanged, except that the lab's host names resolve in
every worker (installed here, before the fork, from the variables the lab
gave: ``LocalRegions.resolver_environment``), so the soak can make the
local region's name stop resolving.

With ``REGIONPROXY_SOAK_EVENTS`` set to a directory, every worker writes
its session's events and each request's start and status there, one JSON
line each (``events-<pid>.jsonl``), with the serving thread: what a failed
request's attempts met, for diagnosis."""

import dataclasses
import json
import os
import sys
import threading
import time
from pathlib import Path

from regionproxy.testing import resolver

resolver.install_from_env()

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "flask_blog"))

from app import create_app  # noqa: E402

application = create_app()

EVENTS = os.environ.get("REGIONPROXY_SOAK_EVENTS")
if EVENTS:
    _files: dict[int, object] = {}
    _lock = threading.Lock()

    def _write(record):
        record = {"t": round(time.time(), 4), "pid": os.getpid(), "thread": threading.current_thread().name, **record}
        line = json.dumps(record, default=str) + "\n"
        with _lock:
            out = _files.get(os.getpid())
            if out is None:
                out = _files[os.getpid()] = open(Path(EVENTS) / f"events-{os.getpid()}.jsonl", "a", buffering=1)  # noqa: SIM115
            out.write(line)

    def _listen(event):
        fields = dataclasses.asdict(event) if dataclasses.is_dataclass(event) else {}
        _write({"event": type(event).__name__, **fields})

    application.extensions["regionproxy"].session.add_listener(_listen)
    _app = application.wsgi_app

    def _logged(environ, start_response):
        path = environ.get("PATH_INFO", "")
        _write({"event": "request", "method": environ.get("REQUEST_METHOD"), "path": path})

        def started(status, headers, *rest):
            _write({"event": "response", "method": environ.get("REQUEST_METHOD"), "path": path, "status": status})
            return start_response(status, headers, *rest)

        return _app(environ, started)

    application.wsgi_app = _logged
