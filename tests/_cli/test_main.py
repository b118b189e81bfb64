"""The README's main-job command and the lab command, as a user runs them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def test_readme_names_the_two_commands_and_the_makefile_has_them():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_demo_serves_the_blog_and_keeps_reads_working():
    process = subprocess.Popen(
        [sys.executable, "-m", "regionproxy", "demo", "--port", "0", "--for", "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Stopping in"):
                break
        url = re.search(r"blog\s+(http://127\.0\.0\.1:\d+)/", "".join(lines)).group(1)
        assert "Post 1" in requests.get(f"{url}/", timeout=5).text
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    served = re.findall(r"served (\d+) reads, (\d+) failed", out)
    assert served and int(served[-1][0]) > 0 and served[-1][1] == "0"


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
