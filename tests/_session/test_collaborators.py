"""Collaborators ask, they do not reach in.

The boto3-shaped surfaces, the health monitor and the admin app import
nothing of the session (not under TYPE_CHECKING, not inside a function):
they get what they need through its methods. And no code touches another
object's underscore members, but for the few of botocore and pybreaker that
have no public way in, each named here with why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "regionproxy"

# (module, private name): a library's member with no public equivalent.
LIBRARY_PRIVATES = {
    # botocore's BaseClient: the request as the local client would build it, for before-call
    ("_boto3/client.py", "_convert_to_request_dict"),
    ("_boto3/client.py", "_request_signer"),
    # botocore's emitters: no way to list an emitter's handlers
    ("_boto3/emitters.py", "_emitter"),
    ("_boto3/emitters.py", "_handlers"),
    ("_boto3/emitters.py", "_root"),
    ("_boto3/emitters.py", "_unique_id_handlers"),
    # redis-py's subscription: its socket, which FleetLink.settle watches (no public handle)
    ("_fleet/link.py", "_sock"),
    # pybreaker's CircuitBreaker: its storage, and its lock after a fork
    ("_regions/breaker.py", "_state_storage"),
    ("_regions/breaker.py", "_lock"),
    # botocore's ParamValidator: its per-type steps, overridden for attribute values (the sidecar's model check)
    ("_sidecar/protocol.py", "_validate_map"),
    ("_sidecar/protocol.py", "_validate_structure"),
    # botocore's client and URLLib3Session, urllib3's pool: connection warming opens a
    # connection into the pool a client sends through, without a request (no public way in)
    ("_regions/warming.py", "_endpoint"),
    ("_regions/warming.py", "_proxy_config"),
    ("_regions/warming.py", "_get_connection_manager"),
    ("_regions/warming.py", "_setup_ssl_cert"),
    ("_regions/warming.py", "_verify"),
    ("_regions/warming.py", "_new_conn"),
    ("_regions/warming.py", "_put_conn"),
    # botocore's RefreshableCredentials: its refresh function, wrapped to hold a failed
    # refresh (no public way to bound the refresh lock's queue)
    ("_regions/credentials.py", "_refresh_using"),
    # the fork-safety protocol (regionproxy._forks.ForkAware), called on each owner
    ("_forks.py", "_after_fork"),
}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, wherever the import statement is."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "module",
    [
        *sorted(str(path.relative_to(SRC)) for path in (SRC / "_boto3").glob("*.py")),
        "_regions/health.py",
        "_web/admin.py",
    ],
)
def test_the_surfaces_health_and_admin_import_nothing_of_the_session(module):
    imported = _imports(SRC / module)
    assert not {name for name in imported if name.startswith("regionproxy._session")}, imported


def _private_reaches(path: Path) -> list[tuple[int, str]]:
    """``(line, name)`` of each ``x._name`` whose ``x`` is not ``self`` or ``cls``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append((node.lineno, node.attr))
    return found


def test_no_code_touches_another_objects_underscore_members():
    reaches = [
        f"{path.relative_to(SRC)}:{line}: .{name}"
        for path in sorted(SRC.rglob("*.py"))
        for line, name in _private_reaches(path)
        if (str(path.relative_to(SRC)), name) not in LIBRARY_PRIVATES
    ]
    assert reaches == []


# The session's collaborators: its own to use, never another module's to reach.
SESSION_PARTS = {"replicas", "attempts", "router", "reads", "cache", "key_schemas", "hooks", "stats"}


def _reaches_into_a_session(path: Path) -> list[tuple[int, str]]:
    """``(line, name)`` of each ``session.<part>`` / ``x.session.<part>``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in SESSION_PARTS:
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if name == "session":
                found.append((node.lineno, node.attr))
    return found


def test_no_code_outside_the_session_reaches_through_it_into_its_parts():
    reaches = [
        f"{path.relative_to(SRC)}:{line}: session.{name}"
        for path in sorted(SRC.rglob("*.py"))
        if path.parent.name != "_session"
        for line, name in _reaches_into_a_session(path)
    ]
    assert reaches == []
