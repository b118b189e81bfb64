"""The app the fleet tests run under gunicorn (tests/support.py's
``gunicorn_master``): a session from ``REGIONPROXY_*`` (its ``fleet`` and
cache too), built at import, before the fork (``--preload``), wrapped by
the middleware.

    GET  /item?k=<pk>            the item (pk=k, sk="s") through the session;
                                 with ``&fleet=1``, also what this worker's
                                 fleet link and cache had done right after
                                 (a stale read is explained)
    POST /item?k=<pk>&v=<value>  writes it; ``delivered``: its cache drops
                                 reached the fleet before it returned
                                 (Redis took its publish; None without a
                                 fleet or a cache)
    GET  /who                    this worker (it joins the fleet first):
                                 pid, breaker states, fleet, cache

Every answer is JSON with the worker's ``pid``; a DynamoDB error is a 502
with its name, so a test sees every request answered or not.
"""

import json
import os
from urllib.parse import parse_qs

import regionproxy as rp

TABLE = os.environ.get("FLEET_APP_TABLE", "Items")
session = rp.RegionSession.from_env()


def _unsendable():
    """Publishes of this worker Redis did not take (None: no fleet's cache)."""
    fleet = session.status()["fleet"]
    return fleet["cache"]["unsendable"] if fleet and fleet.get("cache") else None


def app(environ, start_response):
    query = {name: values[0] for name, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
    status, body = "200 OK", {"pid": os.getpid()}
    try:
        if path == "/item" and method == "GET":
            body["item"] = session.table(TABLE).get_item(Key={"pk": query["k"], "sk": "s"}).get("Item")
            if query.get("fleet"):
                now = session.status()
                body["fleet"], body["cache"] = now["fleet"], now["cache"]
        elif path == "/item" and method == "POST":
            # (a sync worker serves one request at a time: the difference is this write's)
            before = _unsendable()
            session.table(TABLE).put_item(Item={"pk": query["k"], "sk": "s", "v": query.get("v", "")})
            body["delivered"] = None if before is None else _unsendable() == before
        elif path == "/who":
            status_now = session.prepare().status()  # (prepare: the worker joins the fleet)
            body["breakers"] = {region: state["breaker"] for region, state in status_now["regions"].items()}
            body["fleet"] = status_now["fleet"]
            body["cache"] = status_now["cache"]
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
