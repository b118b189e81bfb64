"""A WordPress-style blog on one DynamoDB table.

Items (``PK``, ``SK``):

- a post: ``PK=POST#<id>``, ``SK=METADATA``, with ``title``, ``body``,
  ``author_id``, ``created_at``; and ``GSI1PK="POST"``,
  ``GSI1SK=<created_at>#<id>`` for the ``PostsByDate`` index.
- an edit of a post: ``PK=POST#<id>``, ``SK=REV#<edited_at>``, with the
  fields it set and ``edited_at`` (the post's history, newest last).
- a user: ``PK=USER#<id>``, ``SK=PROFILE``, with ``name`` and ``email``; and
  ``GSI2PK=EMAIL#<email>`` for the ``UsersByEmail`` index.

``PostsByDate`` groups every post under one partition key so that one
query lists them newest first. That partition takes every post write: a
site with more than ~1,000 post writes a second would shard it
(``POST#<yyyy-mm>``) and query the shards it needs. ``UsersByEmail`` is
sparse: only users carry ``GSI2PK``.

The store takes any object with the boto3 Table methods and ``meta.client``:
a ``boto3.resource("dynamodb").Table`` or a regionproxy session's table
(``session.table(name)``, ``session.resource.Table(name)``). An edit is a
transaction through ``table.meta.client``, in Python values, as boto3's
resource client takes it; through the session it is routed like any write.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.conditions import Key

TABLE = "Blog"
TABLE_SPEC: dict[str, Any] = {
    "TableName": TABLE,
    "BillingMode": "PAY_PER_REQUEST",
    "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": name, "AttributeType": "S"} for name in ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK")
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "PostsByDate",
            "KeySchema": [{"AttributeName": "GSI1PK", "KeyType": "HASH"}, {"AttributeName": "GSI1SK", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": "UsersByEmail",
            "KeySchema": [{"AttributeName": "GSI2PK", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        },
    ],
}
_INTERNAL = ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK")


class NotFound(LookupError):
    """No such post or user."""


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in item.items() if name not in _INTERNAL}


class BlogStore:
    """Posts and users of the blog, on one table."""

    def __init__(self, table: Any) -> None:
        self.table = table

    # -- posts ------------------------------------------------------------------

    def create_post(self, title: str, body: str, author_id: str, *, post_id: str | None = None) -> dict[str, Any]:
        post_id = post_id or uuid.uuid4().hex[:12]
        created = datetime.now(UTC).isoformat(timespec="microseconds")
        item = {
            "PK": f"POST#{post_id}",
            "SK": "METADATA",
            "GSI1PK": "POST",
            "GSI1SK": f"{created}#{post_id}",
            "id": post_id,
            "title": title,
            "body": body,
            "author_id": author_id,
            "created_at": created,
        }
        self.table.put_item(Item=item)  # unconditional: safe to repeat on another region
        return _public(item)

    def get_post(self, post_id: str, *, consistent: bool = False) -> dict[str, Any]:
        key = {"PK": f"POST#{post_id}", "SK": "METADATA"}
        # ConsistentRead only when asked: a plain GetItem is what a read cache keeps.
        item = (self.table.get_item(Key=key, ConsistentRead=True) if consistent else self.table.get_item(Key=key)).get("Item")
        if item is None:
            raise NotFound(post_id)
        return _public(item)

    def update_post(self, post_id: str, **fields: str) -> dict[str, Any]:
        self.get_post(post_id)  # 404 for a missing post
        edited = datetime.now(UTC).isoformat(timespec="microseconds")
        names = {f"#{name}": name for name in fields}
        values = {f":{name}": value for name, value in fields.items()}
        # The edit and its history entry are written together or not at all.
        # Both stay unconditional (a SET-only update, a plain put), so the
        # session may repeat the transaction on another region when a region
        # fails mid-write; a condition would make it ambiguous instead.
        self.table.meta.client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.table.name,
                        "Key": {"PK": f"POST#{post_id}", "SK": "METADATA"},
                        "UpdateExpression": "SET " + ", ".join(f"#{name} = :{name}" for name in fields),
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }
                },
                {
                    "Put": {
                        "TableName": self.table.name,
                        "Item": {"PK": f"POST#{post_id}", "SK": f"REV#{edited}", **fields, "edited_at": edited},
                    }
                },
            ]
        )
        return self.get_post(post_id, consistent=True)  # the edit just made, not an older copy

    def post_history(self, post_id: str) -> list[dict[str, Any]]:
        """The edits of a post, oldest first."""
        response = self.table.query(KeyConditionExpression=Key("PK").eq(f"POST#{post_id}") & Key("SK").begins_with("REV#"))
        return [_public(item) for item in response["Items"]]

    def delete_post(self, post_id: str) -> None:
        history = self.table.query(
            KeyConditionExpression=Key("PK").eq(f"POST#{post_id}") & Key("SK").begins_with("REV#"),
            ProjectionExpression="PK, SK",
        )["Items"]
        with self.table.batch_writer() as batch:  # the post and its history
            batch.delete_item(Key={"PK": f"POST#{post_id}", "SK": "METADATA"})
            for key in history:
                batch.delete_item(Key=key)

    def list_posts(self, limit: int = 20) -> list[dict[str, Any]]:
        response = self.table.query(
            IndexName="PostsByDate", KeyConditionExpression=Key("GSI1PK").eq("POST"), ScanIndexForward=False, Limit=limit
        )
        return [_public(item) for item in response["Items"]]

    # -- users ------------------------------------------------------------------

    def create_user(self, name: str, email: str, *, user_id: str | None = None) -> dict[str, Any]:
        user_id = user_id or uuid.uuid4().hex[:12]
        item = {
            "PK": f"USER#{user_id}",
            "SK": "PROFILE",
            "GSI2PK": f"EMAIL#{email.lower()}",
            "id": user_id,
            "name": name,
            "email": email,
        }
        self.table.put_item(Item=item)
        return _public(item)

    def get_user(self, user_id: str) -> dict[str, Any]:
        item = self.table.get_item(Key={"PK": f"USER#{user_id}", "SK": "PROFILE"}).get("Item")
        if item is None:
            raise NotFound(user_id)
        return _public(item)

    def find_user_by_email(self, email: str) -> dict[str, Any]:
        items = self.table.query(IndexName="UsersByEmail", KeyConditionExpression=Key("GSI2PK").eq(f"EMAIL#{email.lower()}"))[
            "Items"
        ]
        if not items:
            raise NotFound(email)
        return _public(items[0])

    def update_user(self, user_id: str, name: str) -> dict[str, Any]:
        self.get_user(user_id)
        response = self.table.update_item(
            Key={"PK": f"USER#{user_id}", "SK": "PROFILE"},
            UpdateExpression="SET #name = :name",
            ExpressionAttributeNames={"#name": "name"},
            ExpressionAttributeValues={":name": name},
            ReturnValues="ALL_NEW",
        )
        return _public(response["Attributes"])

    def delete_user(self, user_id: str) -> None:
        self.table.delete_item(Key={"PK": f"USER#{user_id}", "SK": "PROFILE"})


def seed(store: BlogStore, posts: int = 5) -> None:
    """A few users and posts, with stable ids."""
    author = store.create_user("Ada", "ada@example.com", user_id="ada")
    store.create_user("Grace", "grace@example.com", user_id="grace")
    for n in range(posts):
        store.create_post(f"Post {n + 1}", f"Body of post {n + 1}.", author["id"], post_id=f"post-{n + 1}")
