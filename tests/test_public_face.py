"""The public face: every name in ``regionproxy.__all__`` and every import
the README and the documentation site (``docs/``) show resolves;
``import regionproxy`` stays light (no boto3)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import regionproxy as rp

ROOT = Path(__file__).resolve().parents[1]
README = "\n".join(page.read_text() for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))])


@pytest.mark.parametrize("name", rp.__all__)
def test_every_public_name_imports(name):
    assert getattr(rp, name) is not None


def _readme_imports() -> list[tuple[str, str]]:
    found = {("regionproxy", name) for name in re.findall(r"\brp\.([A-Za-z_]\w*)", README)}
    for module, names in re.findall(r"^\s*from (regionproxy[\w.]*) import ([\w, ]+)$", README, re.M):
        found.update((module, name.strip()) for name in names.split(",") if name.strip())
    return sorted(found)


def test_the_readme_shows_imports_to_check():
    assert ("regionproxy", "RegionSession") in _readme_imports()


@pytest.mark.parametrize(("module", "name"), _readme_imports(), ids=lambda v: v)
def test_every_name_the_readme_uses_imports(module, name):
    assert hasattr(importlib.import_module(module), name), f"{module}.{name}"


def test_importing_the_package_does_not_import_boto3():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, regionproxy; print('boto3' in sys.modules)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip() == "False", done.stderr
