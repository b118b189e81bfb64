"""The app the fleet tests run under gunicorn (tests/support.py's
``gunicorn_master``): a session from ``REGIONPROXY_*`` (its ``fleet`` too),
built at import, before the fork (``--preload``), wrapped by the middleware.

    GET  /item?k=<pk>            the item (pk=k, sk="s") through the session
    POST /item?k=<pk>&v=<value>  writes it
    GET  /who                    this worker: pid, breaker states, fleet

Every answer is JSON with the worker's ``pid``; a DynamoDB error is a 502
with its name, so a test sees every request answered or not.
"""

import json
import os
from urllib.parse import parse_qs

import regionproxy as rp

TABLE = os.environ.get("FLEET_APP_TABLE", "Items")
session = rp.RegionSession.from_env()


def app(environ, start_response):
    query = {name: values[0] for name, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
    status, body = "200 OK", {"pid": os.getpid()}
    try:
        if path == "/item" and method == "GET":
            body["item"] = session.table(TABLE).get_item(Key={"pk": query["k"], "sk": "s"}).get("Item")
        elif path == "/item" and method == "POST":
            session.table(TABLE).put_item(Item={"pk": query["k"], "sk": "s", "v": query.get("v", "")})
        elif path == "/who":
            status_now = session.status()
            body["breakers"] = {region: state["breaker"] for region, state in status_now["regions"].items()}
            body["fleet"] = status_now["fleet"]
        else:
            status, body["error"] = "404 Not Found", "no such path"
    except Exception as error:  # noqa: BLE001 - the test reads what happened
        status, body["error"] = "502 Bad Gateway", f"{type(error).__name__}: {error}"
    data = json.dumps(body, default=str).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


application = rp.RegionProxyMiddleware(
    app,
    session,
    probe_interval=float(os.environ.get("FLEET_APP_PROBE_INTERVAL", "2.0")),
    admin_token=os.environ.get("FLEET_APP_TOKEN") or None,
)
