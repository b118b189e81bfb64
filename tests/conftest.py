"""Shared fixtures. The ``local_regions`` fixture comes from regionproxy's own
pytest plugin (entry point ``pytest11``), as users get it."""

from __future__ import annotations

import pytest

TABLE = "Items"
KEY_SCHEMA = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
}


@pytest.fixture
def lab(local_regions):
    """The default two-region lab with one table, ``Items`` (pk, sk)."""
    local_regions.create_table(TableName=TABLE, **KEY_SCHEMA)
    return local_regions
