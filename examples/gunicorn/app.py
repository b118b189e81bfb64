"""A plain WSGI app under gunicorn: the session is built at import, before
gunicorn forks its workers (``--preload``); each worker creates its own
clients and probe threads on first use."""

import json
import os

import regionproxy as rp

TABLE = os.environ.get("APP_TABLE", "Items")
session = rp.RegionSession.from_env()


def app(environ, start_response):
    item = session.table(TABLE).get_item(Key={"pk": "a", "sk": "s"}).get("Item")
    body = json.dumps({"pid": os.getpid(), "item": item}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


application = rp.RegionProxyMiddleware(app, session, probe_interval=0.5)
