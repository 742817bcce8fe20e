"""The dashboard in a real headless browser (Debian's chromium): what a person would see.

``--dump-dom`` gives the DOM after the browser has loaded and laid out the page, and
``--screenshot`` a phone-sized picture of it. scripts/test installs chromium; without it
the test is skipped, saying why.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
from pathlib import Path

import pytest

from .conftest import API_TOKEN
from .test_dashboard import HELLO, OCTO, PIKA, feed, make_settings, read, serve, table

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
TIMEOUT = 90.0
PHONE = (390, 844)


def chromium(profile: Path, *args: str) -> str:
    """Run chromium once; on a hang, kill it (and its helpers) by its process group."""
    proc = subprocess.Popen(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, led by its PID: only what we started
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {TIMEOUT:.0f} s")
    assert proc.returncode == 0, err[-2000:]
    return out


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


def test_pages_in_a_real_browser(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does)")
    with serve(make_settings(tmp_path)) as (server, client):
        feed(client)
        average = client.get("/api/v1/health").json()["health_score"]

        overview = read(chromium(tmp_path / "p1", "--dump-dom", f"{server.url}/?token={API_TOKEN}"))
        assert ("h1", "Ecosystem overview") in overview.headings
        assert f"Average health score {average:.1f}" in overview.text
        assert "Repositories 3" in overview.text
        lowest = table(overview, "The 3 lowest-scoring")
        assert lowest == [[OCTO, "50.0"], [PIKA, "50.0"], [HELLO, "90.8"]]
        assert overview.current == [("page", "Overview")]

        # Each browser profile signs in once: the token becomes a session cookie.
        url = f"{server.url}/repos/{OCTO}?token={API_TOKEN}"
        repo = read(chromium(tmp_path / "p2", "--dump-dom", url))
        assert ("h1", OCTO) in repo.headings
        assert "Health score 50.0" in repo.text and "Build failure" in repo.text
        components = {row[0]: row[1:] for row in table(repo, "Score components")}
        assert components["Build"][0] == "50.0" and components["Build"][3] == "1 of 2 builds failed"
        (chart,) = repo.charts
        assert chart.startswith(f"Health of {OCTO}")

        shot = tmp_path / "shot.png"
        width, height = PHONE
        chromium(tmp_path / "p3", f"--screenshot={shot}", f"--window-size={width},{height}", url)
    assert shot.exists()
    assert png_size(shot) == PHONE
    # A blank page compresses to a few kilobytes; text, badges and tables do not.
    assert shot.stat().st_size > 15_000
