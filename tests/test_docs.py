"""The documentation site cannot drift from the code.

- ``mkdocs build --strict`` passes: no broken link or anchor, no page left
  out of the nav, no name the API reference (mkdocstrings) cannot find; and
  it fails when one is broken (the two tests that break a copy of the site).
- Every code block marked runnable in Getting started and How-to runs as
  written, against the lab. The marker is an HTML comment on the line
  before a fenced ``python`` block: ``<!-- runnable -->`` runs the block
  with ``python``, ``<!-- runnable: pytest -->`` runs it as a test file
  under ``pytest`` (the ``local_regions`` fixture is the package's plugin).
  Each runs in a process of its own, in its own temporary directory.
- The README is the front door: every line of it (outside its pointers
  into ``docs/``) is also on a page of the site.
- Every public name, ``REGIONPROXY_*`` variable, metric and command is
  named in the reference.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import regionproxy as rp

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RUNNABLE = re.compile(r"^<!-- runnable(?:: (?P<runner>\w+))? -->\n```python\n(?P<code>.*?)^```", re.M | re.S)
RUNNABLE_PAGES = ("getting-started", "how-to")
BUILD_TIMEOUT = 180
RUN_TIMEOUT = 120


def _env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("REGIONPROXY_", "AWS_"))}
    env["NO_MKDOCS_2_WARNING"] = "1"
    # This checkout's sources first, whatever is installed.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=_env(), cwd=config.parent,
    )  # fmt: skip


def _copy_of_the_site(tmp_path: Path) -> Path:
    """mkdocs.yml and docs/ copied into ``tmp_path``, reading this checkout's
    sources and benchmarks; returns the copy's mkdocs.yml."""
    shutil.copytree(DOCS, tmp_path / "docs", symlinks=False)
    config = (ROOT / "mkdocs.yml").read_text()
    config = config.replace("paths: [src]", f"paths: [{ROOT / 'src'}]").replace('base_path: ["."]', f'base_path: ["{ROOT}"]')
    assert str(ROOT / "src") in config and f'"{ROOT}"' in config, "mkdocs.yml no longer has the lines this test rewrites"
    (tmp_path / "mkdocs.yml").write_text(config)
    return tmp_path / "mkdocs.yml"


# -- the build ----------------------------------------------------------------------


def test_the_site_builds_strict_without_warnings(tmp_path):
    done = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    for name in ("regionproxy.RegionSession", "regionproxy.RegionProxyMiddleware", "regionproxy.testing.LocalRegions"):
        assert f'id="{name}"' in api, f"the API reference has no entry for {name}"
    assert 'class="mermaid"' in (tmp_path / "site" / "concepts" / "failover" / "index.html").read_text()


def test_a_name_the_reference_cannot_find_fails_the_build(tmp_path):
    config = _copy_of_the_site(tmp_path)
    api = tmp_path / "docs" / "reference" / "api.md"
    api.write_text(api.read_text() + "\n::: regionproxy.NoSuchSession\n")
    done = _build(config, tmp_path / "site")
    assert done.returncode != 0 and "NoSuchSession" in done.stderr, done.stderr


def test_a_broken_link_fails_the_build(tmp_path):
    config = _copy_of_the_site(tmp_path)
    page = tmp_path / "docs" / "concepts" / "regions.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    done = _build(config, tmp_path / "site")
    assert done.returncode != 0 and "no-such-page.md" in done.stderr, done.stderr


# -- runnable blocks ----------------------------------------------------------------


def _runnable_blocks() -> list[pytest.param]:
    blocks = []
    for part in RUNNABLE_PAGES:
        for page in sorted((DOCS / part).glob("*.md")):
            for number, found in enumerate(RUNNABLE.finditer(page.read_text()), 1):
                name = f"{part}/{page.stem}#{number}"
                blocks.append(pytest.param(found["runner"] or "python", found["code"], id=name))
    return blocks


def test_every_getting_started_page_runs_something():
    ids = {block.id.split("#")[0] for block in _runnable_blocks()}
    pages = {f"getting-started/{page.stem}" for page in (DOCS / "getting-started").glob("*.md")}
    assert pages <= ids, f"no runnable block on {sorted(pages - ids)}"


@pytest.mark.parametrize(("runner", "code"), _runnable_blocks())
def test_a_runnable_block_runs_as_written(tmp_path, runner, code):
    if runner == "pytest":
        script = tmp_path / "test_from_the_docs.py"
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)]
    else:
        assert runner == "python", f"unknown runner {runner!r}"
        script = tmp_path / "from_the_docs.py"
        argv = [sys.executable, str(script)]
    script.write_text(code)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=_env(), cwd=tmp_path)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"


def test_the_marker_finds_blocks_and_a_broken_one_fails(tmp_path):
    page = "<!-- runnable -->\n```python\nimport regionproxy\nraise SystemExit(3)\n```\n"
    (found,) = RUNNABLE.finditer(page)
    script = tmp_path / "broken.py"
    script.write_text(found["code"])
    done = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=RUN_TIMEOUT, env=_env())
    assert done.returncode == 3


# -- the README is the front door ----------------------------------------------------


def _site_text() -> str:
    pages = [page.read_text() for page in DOCS.rglob("*.md") if "latest" not in page.relative_to(DOCS).parts]
    return "\n".join([*pages, (ROOT / "benchmarks" / "README.md").read_text()])


def _readme_blocks() -> list[tuple[int, list[str], bool]]:
    """The README's paragraphs, list items and code blocks: (first line's
    number, lines, fenced)."""
    blocks: list[tuple[int, list[str], bool]] = []
    fenced = False
    for number, line in enumerate((ROOT / "README.md").read_text().splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
            if fenced:
                blocks.append((number + 1, [], True))
            continue
        if fenced:
            blocks[-1][1].append(line)
        elif not line.strip():
            blocks.append((number + 1, [], False))
        elif line.startswith(("- ", "#")) or not blocks or blocks[-1][2]:
            blocks.append((number, [line], False))
        else:
            blocks[-1][1].append(line)
    return [block for block in blocks if block[1]]


def test_the_readme_holds_nothing_the_site_does_not():
    site = _site_text()
    missing = []
    for first, lines, fenced in _readme_blocks():
        if not fenced and (lines[0].startswith("#") or any("](docs/" in line for line in lines)):
            continue  # a section heading, or a pointer into the site
        for number, line in enumerate(lines, first):
            text = line.strip()
            if text.startswith("!["):
                text = text[text.index("](") + 2 : -1].removeprefix("benchmarks/")  # an image: the same file on a page
            if text and text not in site:
                missing.append(f"README.md:{number}: {line}")
    assert not missing, "the README says what no page of the site does (move it to a page):\n" + "\n".join(missing)


# -- the reference names everything -------------------------------------------------


def test_every_public_name_is_in_the_reference():
    reference = (DOCS / "reference" / "api.md").read_text() + (DOCS / "reference" / "events.md").read_text()
    missing = [name for name in rp.__all__ if not name.startswith("_") and not re.search(rf"\b{name}\b", reference)]
    assert not missing, f"docs/reference/ does not name {missing}"


def test_every_variable_is_in_the_configuration_reference():
    from regionproxy._config.environment import ENVIRONMENT
    from regionproxy._web.options import MIDDLEWARE_SETTINGS as OPTIONS

    reference = (DOCS / "reference" / "configuration.md").read_text()
    missing = [name for name in ENVIRONMENT if f"`REGIONPROXY_{name}`" not in reference]
    assert not missing, f"docs/reference/configuration.md does not name {missing}"
    options = (DOCS / "reference" / "middleware.md").read_text()
    missing = [name for name in OPTIONS if f"`REGIONPROXY_{name}`" not in options]
    assert not missing, f"docs/reference/middleware.md does not name {missing}"


def test_every_metric_is_in_the_metrics_reference():
    source = (ROOT / "src" / "regionproxy" / "_web" / "metrics.py").read_text()
    names = re.findall(r'"(regionproxy_[a-z_]+)"', source)
    assert "regionproxy_breaker_state" in names
    reference = (DOCS / "reference" / "metrics.md").read_text()
    missing = [name for name in names if not re.search(rf"`{name}(_total)?`", reference)]
    assert not missing, f"docs/reference/metrics.md does not name {missing}"


def test_every_pip_install_of_an_extra_is_quoted_for_zsh():
    pages = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    unquoted = [
        f"{page.relative_to(ROOT)}: {match.group(0)}"
        for page in pages
        for match in re.finditer(r"pip install [^\n`]*?(?<![\"'])regionproxy\[", page.read_text())
    ]
    assert not unquoted, "zsh reads [] as a pattern: quote these:\n" + "\n".join(unquoted)
    assert 'pip install "regionproxy[flask]"' in (DOCS / "getting-started" / "demo.md").read_text()
