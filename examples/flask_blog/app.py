"""A small Flask blog on DynamoDB, kept serving across a region outage.

It is an ordinary Flask app; regionproxy adds two lines (marked below):
the extension, which wraps the app in the middleware and builds the
session from ``REGIONPROXY_*`` config, and ``table()``, which stands where
``boto3.resource("dynamodb").Table(...)`` stood. The model uses that Table as
boto3's: item calls, a batch writer, and an edit as a transaction through
``table.meta.client`` (``examples/blog/model.py``); all of it is routed by
the session. Two error handlers show
what a production app answers when no region can serve.

Over a local lab with the blog's tables (from the repository's root)::

    make example-flask PORT=8000
    # or: regionproxy lab --example blog -- flask --app examples/flask_blog/app.py run --port 8000
"""

from __future__ import annotations

import html
import sys
from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, request

from regionproxy import AllRegionsFailed, AmbiguousWriteError
from regionproxy.contrib.flask import RegionProxy, table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared blog model
from blog.model import TABLE, BlogStore, NotFound  # noqa: E402
from blog.outage import RETRY_AFTER, ambiguous_write_page, unavailable_page  # noqa: E402


def create_app(config: dict[str, Any] | None = None, **regionproxy_options: Any) -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env("FLASK")
    app.config.update(config or {})
    RegionProxy(app, **regionproxy_options)  # regionproxy, line 1 of 2

    def store() -> BlogStore:
        return BlogStore(table(TABLE))  # regionproxy, line 2 of 2: was boto3.resource("dynamodb").Table(TABLE)

    @app.errorhandler(NotFound)
    def not_found(error: NotFound) -> Any:
        return jsonify(error=f"not found: {error}"), 404

    @app.errorhandler(AllRegionsFailed)
    def regions_down(error: AllRegionsFailed) -> Any:
        # Every region failed: nothing was read or written. A short page, no
        # traceback, and a hint to come back (browsers and crawlers honour it).
        app.logger.warning("%s", error)
        return unavailable_page(), 503, {"Retry-After": str(RETRY_AFTER), "Content-Type": "text/html; charset=utf-8"}

    @app.errorhandler(AmbiguousWriteError)
    def write_outcome_unknown(error: AmbiguousWriteError) -> Any:
        # The write may have been applied: no Retry-After, since repeating it
        # blindly could apply it twice. The user checks first.
        app.logger.warning("%s", error)
        return ambiguous_write_page(), 504, {"Content-Type": "text/html; charset=utf-8"}

    @app.get("/")
    def index() -> str:
        items = "".join(
            f'<li><a href="/posts/{html.escape(p["id"])}">{html.escape(p["title"])}</a> '
            f'<small>{html.escape(p["created_at"][:19])}</small></li>'
            for p in store().list_posts()
        )
        return (
            "<!doctype html><title>regionproxy blog</title><h1>Blog</h1>"
            f"<ul>{items}</ul><p><a href=\"/_regionproxy/\">status page</a> · <a href=\"/readyz\">readiness</a></p>"
        )

    @app.get("/posts")
    def list_posts() -> Any:
        return jsonify(store().list_posts(limit=int(request.args.get("limit", 20))))

    @app.post("/posts")
    def create_post() -> Any:
        data = request.get_json(force=True)
        return jsonify(store().create_post(data["title"], data["body"], data["author_id"])), 201

    @app.get("/posts/<post_id>")
    def get_post(post_id: str) -> Any:
        return jsonify(store().get_post(post_id))

    @app.put("/posts/<post_id>")
    def update_post(post_id: str) -> Any:
        data = request.get_json(force=True)
        fields = {name: data[name] for name in ("title", "body") if name in data}
        if not fields:
            abort(400)
        return jsonify(store().update_post(post_id, **fields))

    @app.get("/posts/<post_id>/history")
    def post_history(post_id: str) -> Any:
        return jsonify(store().post_history(post_id))

    @app.delete("/posts/<post_id>")
    def delete_post(post_id: str) -> Any:
        store().delete_post(post_id)
        return "", 204

    @app.get("/users")
    def find_user() -> Any:
        return jsonify(store().find_user_by_email(request.args["email"]))

    @app.post("/users")
    def create_user() -> Any:
        data = request.get_json(force=True)
        return jsonify(store().create_user(data["name"], data["email"])), 201

    @app.get("/users/<user_id>")
    def get_user(user_id: str) -> Any:
        return jsonify(store().get_user(user_id))

    @app.put("/users/<user_id>")
    def update_user(user_id: str) -> Any:
        return jsonify(store().update_user(user_id, request.get_json(force=True)["name"]))

    @app.delete("/users/<user_id>")
    def delete_user(user_id: str) -> Any:
        store().delete_user(user_id)
        return "", 204

    return app
