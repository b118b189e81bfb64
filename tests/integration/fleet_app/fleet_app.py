"""A WSGI app for the fleet tests, under gunicorn: the session is built at
import (``--preload``) from ``REGIONPROXY_*`` variables (a cache, the
fleet's Redis). ``GET /item/<key>`` reads an item through the cache;
``PUT /item/<key>/<value>`` writes it; ``GET /fleet`` says whether the
worker is connected to the fleet and how often it emptied its cache after
a gap; each answers the worker's pid."""

import json
import os

import regionproxy as rp

TABLE = os.environ["APP_TABLE"]
session = rp.RegionSession.from_env()


def app(environ, start_response):
    parts = environ["PATH_INFO"].strip("/").split("/")
    client = session.client
    if environ["REQUEST_METHOD"] == "PUT" and len(parts) == 3:
        # (a sync worker serves one request at a time: the difference is this write's)
        before = session.status()["fleet"]["cache"]["unsendable"]
        client.put_item(TableName=TABLE, Item={"pk": {"S": parts[1]}, "v": {"S": parts[2]}})
        body = {"pid": os.getpid(), "delivered": session.status()["fleet"]["cache"]["unsendable"] == before}
    elif parts == ["fleet"]:
        fleet = session.prepare().status()["fleet"]  # (prepare: the worker joins the fleet)
        body = {"pid": os.getpid(), "connected": fleet["connected"], "flushes": fleet["cache"]["reconnect_flushes"]}
    elif len(parts) == 2:
        item = client.get_item(TableName=TABLE, Key={"pk": {"S": parts[1]}}).get("Item")
        body = {"pid": os.getpid(), "v": item["v"]["S"] if item else None}
        if "fleet" in environ.get("QUERY_STRING", ""):  # what the worker's link has done (a stale read is explained)
            fleet = session.status()["fleet"]
            body["fleet"] = {name: fleet.get(name) for name in ("connected", "received", "settled", "settle_timeouts", "cache")}
    else:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


application = rp.RegionProxyMiddleware(app, session)
