"""The Flask app the ``webapp`` scenario serves: one GetItem per request.

Configured from the environment so that gunicorn can build it
(``gunicorn 'regionproxy.bench.app:create_app()'``):

- ``BENCH_ENDPOINT``: the DynamoDB endpoint (the canned one);
- ``BENCH_MODE``: ``bare`` (a plain boto3 client) or ``wrapped``
  (``RegionProxyMiddleware`` and ``session.client``);
- ``BENCH_CACHE``: ``1`` gives the session a read cache.

Both modes make the same call through a boto3 client, so the difference is
the middleware and the session.
"""

from __future__ import annotations

import json
import os
from typing import Any

TABLE = "Bench"
WIRE_KEY = {"pk": {"S": "bench"}, "sk": {"S": "item"}}
REGIONS = ["eu-west-3", "us-east-1"]


def create_app() -> Any:
    import boto3
    from flask import Flask, Response

    import regionproxy as rp

    endpoint = os.environ["BENCH_ENDPOINT"]
    mode = os.environ.get("BENCH_MODE", "bare")
    boto = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    app = Flask(__name__)
    if mode == "bare":
        from botocore.config import Config

        config = Config(connect_timeout=0.5, read_timeout=1.0, retries={"mode": "standard", "total_max_attempts": 2})
        client = boto.client("dynamodb", region_name=REGIONS[0], endpoint_url=endpoint, config=config)
    else:
        cache = rp.CachePolicy(maxsize=1000, ttl=5.0) if os.environ.get("BENCH_CACHE") == "1" else None
        session = rp.RegionSession(REGIONS, endpoints={r: endpoint for r in REGIONS}, cache=cache, boto3_session=boto)
        client = session.client
        app.wsgi_app = rp.RegionProxyMiddleware(app.wsgi_app, session, probe_table=TABLE)

    @app.get("/item")
    def item() -> Response:
        answer = client.get_item(TableName=TABLE, Key=WIRE_KEY)
        return Response(json.dumps(answer.get("Item")), mimetype="application/json")

    return app
