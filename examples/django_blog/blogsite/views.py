"""JSON views of the blog: ordinary Django views over a DynamoDB table.

``table(TABLE)`` from regionproxy stands where
``boto3.resource("dynamodb").Table(TABLE)`` stood; the model uses it as
boto3's Table, ``meta.client`` included (an edit is a transaction through it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from blog.model import TABLE, BlogStore, NotFound
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt

from regionproxy.contrib.django import table


def store() -> BlogStore:
    return BlogStore(table(TABLE))


def api(view: Callable[..., Any]) -> Callable[..., HttpResponse]:
    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as error:
            return JsonResponse({"error": f"not found: {error}"}, status=404)

    return wrapper


def index(request: HttpRequest) -> HttpResponse:
    items = "".join(
        f'<li><a href="/posts/{escape(p["id"])}">{escape(p["title"])}</a> <small>{escape(p["created_at"][:19])}</small></li>'
        for p in store().list_posts()
    )
    return HttpResponse(
        "<!doctype html><title>regionproxy blog</title><h1>Blog</h1>"
        f'<ul>{items}</ul><p><a href="/_regionproxy/">status page</a> · <a href="/readyz">readiness</a></p>'
    )


def _body(request: HttpRequest) -> dict[str, Any]:
    return json.loads(request.body or b"{}")


@api
def posts(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        data = _body(request)
        return JsonResponse(store().create_post(data["title"], data["body"], data["author_id"]), status=201)
    return JsonResponse(store().list_posts(limit=int(request.GET.get("limit", 20))), safe=False)


@api
def post(request: HttpRequest, post_id: str) -> HttpResponse:
    if request.method == "PUT":
        data = _body(request)
        return JsonResponse(store().update_post(post_id, **{k: data[k] for k in ("title", "body") if k in data}))
    if request.method == "DELETE":
        store().delete_post(post_id)
        return HttpResponse(status=204)
    return JsonResponse(store().get_post(post_id))


@api
def post_history(request: HttpRequest, post_id: str) -> HttpResponse:
    return JsonResponse(store().post_history(post_id), safe=False)


@api
def users(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        data = _body(request)
        return JsonResponse(store().create_user(data["name"], data["email"]), status=201)
    return JsonResponse(store().find_user_by_email(request.GET["email"]))


@api
def user(request: HttpRequest, user_id: str) -> HttpResponse:
    if request.method == "PUT":
        return JsonResponse(store().update_user(user_id, _body(request)["name"]))
    if request.method == "DELETE":
        store().delete_user(user_id)
        return HttpResponse(status=204)
    return JsonResponse(store().get_user(user_id))
