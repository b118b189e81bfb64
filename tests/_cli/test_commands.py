"""A new user's first hour: what ``pip install``, ``make`` and ``regionproxy lab``
do on their own machine."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import pytest

from regionproxy._cli.main import build_parser, main
from regionproxy.errors import ConfigError
from regionproxy.testing.examples import find_examples_dir

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sysconfig.get_path("scripts"))
MAKE = shutil.which("make")
# Loopback, nothing listening: probes are refused at once and nothing leaves the machine.
NOWHERE = {"REGIONPROXY_REGIONS": "eu-west-3", "REGIONPROXY_ENDPOINTS": "eu-west-3=http://127.0.0.1:9"}


def make(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``make`` in the repository with this interpreter's venv, never rebuilding it."""
    return subprocess.run(
        [MAKE, "--no-print-directory", "-o", f"{BIN}/regionproxy", f"BIN={BIN}", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


# -- extras ----------------------------------------------------------------------


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _extra_of(requirement: str) -> str | None:
    found = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
    return found.group(1) if found else None


def _distributions(extra: str | None) -> set[str]:
    requires = importlib.metadata.requires("regionproxy") or []
    return {_requirement_name(r) for r in requires if _extra_of(r) == extra} - {"regionproxy"}


def _modules_not_installed_with(extra: str) -> list[str]:
    """Top-level modules that only other extras of regionproxy bring: what a
    user who ran ``pip install regionproxy[<extra>]`` does not have."""
    requires = importlib.metadata.requires("regionproxy") or []
    optional = {_requirement_name(r) for r in requires if _extra_of(r)} - {"regionproxy"}
    missing = optional - _distributions(None) - _distributions(extra)
    return sorted(
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if dists and all(dist.lower().replace("_", "-") in missing for dist in dists)
    )


STARTS_WITH_DEFAULTS = {
    "flask": """
        from flask import Flask
        from regionproxy.contrib.flask import RegionProxy

        app = Flask("first_hour")
        RegionProxy(app)
        client = app.test_client()
        assert client.get("/livez").status_code == 200
        assert client.get("/metrics").status_code == 200
        app.extensions["regionproxy"].middleware.close()
    """,
    "django": """
        import django
        from django.conf import settings

        urlpatterns = []
        settings.configure(
            ROOT_URLCONF="__main__", ALLOWED_HOSTS=["testserver"], DATABASES={},
            INSTALLED_APPS=["regionproxy.contrib.django"],
            MIDDLEWARE=["regionproxy.contrib.django.RegionProxyMiddleware"],
            REGIONPROXY={"REGIONS": "eu-west-3", "ENDPOINTS": "eu-west-3=http://127.0.0.1:9"},
        )
        django.setup()
        from django.test import Client
        from regionproxy.contrib.django import reset

        client = Client()
        assert client.get("/livez").status_code == 200
        assert client.get("/metrics").status_code == 200
        reset()
    """,
}
BLOCKER = """
    import json, sys

    BLOCKED = set(json.loads(sys.argv[1]))

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (not in this extra)", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
"""


@pytest.mark.parametrize("extra", [pytest.param("flask", id="flask"), pytest.param("django", id="django")])
def test_framework_extra_requires_prometheus_client(extra):
    assert "prometheus-client" in _distributions(extra)


@pytest.mark.parametrize("extra", [pytest.param("flask", id="flask"), pytest.param("django", id="django")])
def test_framework_extra_alone_starts_with_the_defaults(extra):
    """In a process where only the base and this extra's distributions can be
    imported, the framework integration starts with every default (metrics on)."""
    blocked = _modules_not_installed_with(extra)
    assert "moto" in blocked, "the simulation must hide what other extras bring"
    script = textwrap.dedent(BLOCKER) + textwrap.dedent(STARTS_WITH_DEFAULTS[extra]) + "\nprint('started')\n"
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(blocked)],
        env={**os.environ, **NOWHERE}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "started" in done.stdout, done.stderr[-3000:]


# -- make --------------------------------------------------------------------------


def test_make_demo_passes_the_port():
    done = make("-n", "demo", "PORT=8123")
    assert done.returncode == 0, done.stderr
    assert re.search(r"regionproxy demo --port 8123\b", done.stdout)


def test_make_test_checks_chromium_before_pytest():
    done = make("-n", "test")
    assert done.returncode == 0, done.stderr
    assert done.stdout.index("chromium") < done.stdout.index("-m pytest")


FAKE_TOOLS = {
    "id": '#!/bin/sh\necho "$FAKE_UID"\n',
    "apt-get": '#!/bin/sh\necho "apt-get $*" >> "$APT_LOG"\n',
    "chromium": "#!/bin/sh\nexit 0\n",
}


@pytest.mark.parametrize(
    ("tools", "uid", "installs", "hint"),
    [
        pytest.param(["id", "chromium"], "1000", False, False, id="present"),
        pytest.param(["id", "apt-get"], "0", True, False, id="root-installs-with-apt-get"),
        pytest.param(["id", "apt-get"], "1000", False, True, id="not-root-hint"),
        pytest.param(["id"], "0", False, True, id="no-apt-get-hint"),
    ],
)
def test_make_chromium_installs_it_as_root_or_says_how(tmp_path, tools, uid, installs, hint):
    for tool in tools:
        path = tmp_path / tool
        path.write_text(FAKE_TOOLS[tool])
        path.chmod(0o755)
    log = tmp_path / "apt.log"
    done = make("chromium", env={"PATH": str(tmp_path), "FAKE_UID": uid, "APT_LOG": str(log)})
    assert done.returncode == 0, done.stderr
    calls = log.read_text() if log.exists() else ""
    assert ("install -y -qq chromium" in calls) is installs, calls
    hints = [line for line in done.stderr.splitlines() if "apt-get install chromium" in line]
    assert len(hints) == (1 if hint else 0), done.stderr


# -- pytest -m slow ----------------------------------------------------------------


def test_slow_marker_selects_the_soak_test():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "slow", "-p", "no:randomly"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    assert any("test_soak.py" in line for line in collected), done.stdout[-3000:]


# -- regionproxy lab ---------------------------------------------------------------

CHILD = """
import json, os, sys
import boto3

env = os.environ
assert env["REGIONPROXY_REGIONS"] == "eu-west-3,us-east-1"
assert env["AWS_DEFAULT_REGION"] == "eu-west-3" and env["AWS_ACCESS_KEY_ID"] == "testing"
assert "AWS_PROFILE" not in env
for region, url in (part.split("=", 1) for part in env["REGIONPROXY_ENDPOINTS"].split(",")):
    assert url.startswith("http://127.0.0.1:"), url
    client = boto3.client("dynamodb", region_name=region, endpoint_url=url)
    item = client.get_item(TableName=sys.argv[1], Key=json.loads(sys.argv[2]))["Item"]  # seeded and replicated
    print(region, item[sys.argv[3]]["S"])
sys.exit(7)
"""


@pytest.mark.parametrize(
    ("example", "table", "key", "attribute", "value", "extra_env"),
    [
        pytest.param("blog", "Blog", {"PK": {"S": "POST#post-1"}, "SK": {"S": "METADATA"}}, "title", "Post 1", {}, id="blog"),
        pytest.param(
            "gunicorn", "Items", {"pk": {"S": "a"}, "sk": {"S": "s"}}, "v", "hello from the lab",
            {"APP_TABLE": "Items"}, id="gunicorn",
        ),
    ],
)  # fmt: skip
def test_lab_example_runs_the_command_over_seeded_replicated_tables(example, table, key, attribute, value, extra_env):
    script = CHILD
    extra_check = "".join(f"\nassert os.environ[{name!r}] == {wanted!r}" for name, wanted in extra_env.items())
    script = script.replace("sys.exit(7)", extra_check + "\nsys.exit(7)")
    done = subprocess.run(
        [sys.executable, "-m", "regionproxy", "lab", "--example", example, "--",
         "python", "-c", script, table, json.dumps(key), attribute],
        env={**os.environ, "AWS_PROFILE": "someone-real"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 7, done.stderr[-3000:]  # the command's own status
    assert f"eu-west-3 {value}" in done.stdout and f"us-east-1 {value}" in done.stdout, done.stdout


SLEEPER = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize(
    ("how", "status"),
    [
        pytest.param("for", 0, id="for-seconds"),
        pytest.param("sigterm", 0, id="sigterm"),
        pytest.param("ctrl-c", 128 + signal.SIGINT, id="ctrl-c-to-the-group"),
    ],
)
def test_lab_stops_its_command_and_itself(tmp_path, how, status):
    pidfile = tmp_path / "child.pid"
    duration = ["--for", "1"] if how == "for" else []
    process = subprocess.Popen(
        [sys.executable, "-m", "regionproxy", "lab", *duration, "--", sys.executable, "-c", SLEEPER, str(pidfile)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
            time.sleep(0.05)
        child = int(pidfile.read_text())
        if how == "sigterm":
            process.send_signal(signal.SIGTERM)
        elif how == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)  # what a terminal does
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == status, err[-3000:]
    assert _gone(child), "the command was stopped with the lab"
    # The sleeper's own KeyboardInterrupt may print; regionproxy's code must not.
    assert not re.search(r'File ".*regionproxy', err), err


def test_lab_with_dashes_and_no_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["lab", "--"])
    assert exited.value.code == 2
    assert "nothing to run after --" in capsys.readouterr().err


def test_examples_outside_a_checkout_say_so(tmp_path):
    with pytest.raises(ConfigError, match="source checkout"):
        find_examples_dir([tmp_path])


def test_examples_are_found_from_anywhere_in_the_checkout():
    assert find_examples_dir([ROOT / "examples" / "gunicorn"]) == ROOT / "examples"


# -- the CLI reference (docs/reference/cli.md) ---------------------------------------


def _cli_words():
    parser = build_parser()
    commands = next(action for action in parser._actions if action.choices and hasattr(action, "_name_parser_map"))
    for name, subparser in commands.choices.items():
        yield f"regionproxy {name}"
        for action in subparser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    yield option


def test_the_cli_reference_documents_every_command_and_option():
    reference = (ROOT / "docs" / "reference" / "cli.md").read_text()
    missing = [word for word in dict.fromkeys(_cli_words()) if word not in reference]
    assert not missing, f"docs/reference/cli.md does not mention {missing}"
