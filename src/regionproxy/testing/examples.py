"""The repository's examples over a lab: their tables, seed data and environment.

``regionproxy lab --example blog -- <command>`` uses this: it creates the
example's tables in every region of a :class:`~regionproxy.testing.LocalRegions`,
seeds them, waits until they are replicated, and hands the command the
environment the example app reads (:func:`environment`).

The blog's schema and seed live with the example (``examples/blog/model.py``),
which the apps import too; so ``blog`` needs a source checkout, found from the
working directory upwards or from this package's own location.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from regionproxy.errors import ConfigError

if TYPE_CHECKING:
    from regionproxy.testing.lab import LocalRegions

BLOG_MODEL = Path("blog") / "model.py"
# The lab's fake credentials (they sign requests; nothing checks them).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Variables that would point a child at a real AWS account.
REAL_ACCOUNT = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


@dataclass(frozen=True)
class Example:
    """What one example needs from a lab.

    :param name: the ``--example`` name.
    :param summary: one line for ``--help``.
    :param prepare: creates and seeds the tables in a started lab.
    :param env: variables the example app reads besides ``REGIONPROXY_*``.
    :param temp_dirs: variables that name a fresh directory, unless already set.
    :param needs_checkout: its tables are defined in the repository's ``examples/``.
    """

    name: str
    summary: str
    prepare: Callable[[LocalRegions], None]
    env: Mapping[str, str] = field(default_factory=dict)
    temp_dirs: tuple[str, ...] = ()
    needs_checkout: bool = False


def find_examples_dir(starts: Iterable[Path] | None = None) -> Path:
    """The repository's ``examples/`` directory, searched upwards from each
    of ``starts`` (default: the working directory, then this package)."""
    starts = list(starts) if starts is not None else [Path.cwd(), Path(__file__).resolve()]
    for start in starts:
        for parent in [start, *start.parents]:
            if (parent / "examples" / BLOG_MODEL).is_file():
                return parent / "examples"
    raise ConfigError(
        "the examples need a source checkout of regionproxy (examples/blog/model.py not found above "
        f"{', '.join(str(start) for start in starts)}): run this from the repository",
        setting="example",
    )


def load_blog_model(examples: Path | None = None) -> ModuleType:
    """``examples/blog/model.py``, imported as ``blog.model`` (the name the apps use)."""
    if "blog.model" in sys.modules:
        return sys.modules["blog.model"]
    examples = examples or find_examples_dir()
    if str(examples) not in sys.path:
        sys.path.insert(0, str(examples))
    spec = importlib.util.spec_from_file_location("blog.model", examples / BLOG_MODEL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["blog.model"] = module
    spec.loader.exec_module(module)
    return module


def seed_table(lab: LocalRegions, name: str) -> Any:
    """A boto3 Table of the lab's first region, past its proxy: seeding does
    not depend on faults or on the session; replication copies the items."""
    import boto3

    from regionproxy.testing.lab import CREDENTIALS as LAB_CREDENTIALS

    region = lab.regions[0]
    resource = boto3.session.Session(**LAB_CREDENTIALS).resource(
        "dynamodb", region_name=region, endpoint_url=lab.direct_endpoints[region]
    )
    return resource.Table(name)


def prepare_blog(lab: LocalRegions) -> None:
    model = load_blog_model()
    lab.create_table(**model.TABLE_SPEC)
    model.seed(model.BlogStore(seed_table(lab, model.TABLE)))


GUNICORN_TABLE = "Items"


def prepare_gunicorn(lab: LocalRegions) -> None:
    lab.create_table(
        TableName=GUNICORN_TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
    )
    # The one item examples/gunicorn/app.py reads.
    seed_table(lab, GUNICORN_TABLE).put_item(Item={"pk": "a", "sk": "s", "v": "hello from the lab"})


EXAMPLES = {
    example.name: example
    for example in (
        Example("blog", "the Flask and Django blogs: table Blog, two users, five posts", prepare_blog, needs_checkout=True),
        Example(
            "gunicorn",
            "the plain WSGI app under gunicorn: table Items, one item",
            prepare_gunicorn,
            env={"APP_TABLE": GUNICORN_TABLE},
            # gunicorn.conf.py's multiprocess metrics directory; its default, /run/app-metrics, needs root.
            temp_dirs=("PROMETHEUS_MULTIPROC_DIR",),
        ),
    )
}


def prepare(lab: LocalRegions, name: str, *, timeout: float = 10.0) -> Example:
    """Create and seed example ``name``'s tables in ``lab``; return when
    every region has them."""
    try:
        example = EXAMPLES[name]
    except KeyError:
        raise ConfigError(f"unknown example {name!r}; known: {sorted(EXAMPLES)}", setting="example") from None
    example.prepare(lab)
    lab.wait_replicated(timeout=timeout)
    return example


def environment(lab: LocalRegions, example: Example | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: none) plus what an app needs to use ``lab``:
    ``REGIONPROXY_REGIONS``, ``REGIONPROXY_ENDPOINTS``, the lab's fake
    credentials and ``AWS_DEFAULT_REGION`` (and ``AWS_CA_BUNDLE`` for a
    ``tls=True`` lab), and the example's own variables. Variables that name
    a real AWS account are dropped."""
    env = {name: value for name, value in (base or {}).items() if name not in REAL_ACCOUNT}
    env.update(CREDENTIALS)
    env["AWS_DEFAULT_REGION"] = lab.regions[0]
    env["REGIONPROXY_REGIONS"] = ",".join(lab.regions)
    env["REGIONPROXY_ENDPOINTS"] = ",".join(f"{region}={url}" for region, url in lab.endpoints.items())
    if lab.ca_bundle is not None:
        env["AWS_CA_BUNDLE"] = lab.ca_bundle
    if example is not None:
        env.update(example.env)
    return env


def exports(env: Mapping[str, str], names: Iterable[str]) -> list[str]:
    """``export NAME=value`` lines, for a user who runs the app in another shell."""
    return [f"export {name}={env[name]}" for name in names if name in env]

