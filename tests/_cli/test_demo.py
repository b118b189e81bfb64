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
    served = re.findall(r"(\d+) page reads answered, (\d+) failed; their DynamoDB calls: (\d+) served by a region .*?, (\d+) cache hits", out)
    assert served and int(served[-1][0]) > 0 and served[-1][1] == "0"
    # Every page read made a DynamoDB call, answered by a region or by the cache.
    assert int(served[-1][2]) + int(served[-1][3]) >= int(served[-1][0])


def test_the_terminal_counts_cache_hits_apart_as_the_status_page_does():
    from regionproxy._cli.demo import progress

    status = {"operations": {"read": {"served": 22}, "write": {"served": 0}}, "cache": {"hits": 109}}
    line = progress(131, 0, status, "pass")
    assert "131 page reads answered" in line
    assert "22 served by a region (the status page's 'served')" in line and "109 cache hits" in line


def test_the_status_page_shows_cache_hits_next_to_served():
    from importlib.resources import files

    page = files("regionproxy._web").joinpath("static/status.html").read_text()
    assert 'id="cache-hits"' in page and "data.cache.hits" in page
