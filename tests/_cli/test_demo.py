"""``regionproxy demo``: the blog over a lab, with traffic, served until told
to stop."""

from __future__ import annotations

import re
import subprocess
import sys

import requests


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
