"""The command line as a user runs it: the README's two make targets, the lab
command, and a command whose extra is not installed (the demo is in
``test_demo.py``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_readme_names_the_two_commands_and_the_makefile_has_them():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_lab_command_prints_endpoints():
    out = subprocess.run(
        [sys.executable, "-m", "regionproxy", "lab", "--for", "0.5"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert re.search(r"eu-west-3\s+http://127\.0\.0\.1:\d+", out)
    assert re.search(r"us-east-1\s+http://127\.0\.0\.1:\d+", out)


@pytest.mark.parametrize(
    ("argv", "missing", "extra"),
    [
        pytest.param(["probe", "--region", "eu-west-3", "--endpoint", "https://127.0.0.1:9"], "hdrh", "bench", id="probe"),
        pytest.param(["lab", "--for", "0"], "moto", "testing", id="lab"),
    ],
)
def test_a_command_without_its_extra_names_the_extra_to_install(monkeypatch, capsys, argv, missing, extra):
    from regionproxy._cli.main import main

    for name in [name for name in sys.modules if name == missing or name.startswith(missing + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)  # import of it fails, as when not installed
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert f"pip install 'regionproxy[{extra}]'" in capsys.readouterr().err


def test_version_prints_the_package_version(capsys):
    import regionproxy as rp
    from regionproxy._cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"regionproxy {rp.__version__}"
