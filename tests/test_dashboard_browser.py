"""The dashboard in a real headless browser (Debian's chromium): what a person would see.

``--dump-dom`` gives the DOM after the browser has loaded and laid out the page, and
``--screenshot`` a phone-sized picture of it. scripts/test installs chromium; without it
the test is skipped, saying why.
"""

from __future__ import annotations

import html
import json
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
        assert lowest == [[OCTO, "50.0 provisional"], [PIKA, "50.0 provisional"], [HELLO, "90.8"]]
        assert overview.current == [("page", "Overview")]

        # Each browser profile signs in once: the token becomes a session cookie.
        url = f"{server.url}/repos/{OCTO}?token={API_TOKEN}"
        repo = read(chromium(tmp_path / "p2", "--dump-dom", url))
        assert ("h1", OCTO) in repo.headings
        assert "Health score 50.0 provisional" in repo.text and "Build failure" in repo.text
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


DESKTOP = (1280, 900)
# Read at import: the tests' hermetic environment clears every PULSEHOOK_ variable.
SCREENSHOTS = os.environ.get("PULSEHOOK_SCREENSHOTS")
SHOTS = {
    "overview": "/",
    "repos": "/repos",
    "repo": f"/repos/{OCTO}",
    "trends": "/trends",
    "alerts": "/alerts",
    "dependencies": "/dependencies",
    "summary": "/summary",
}
# Appended to a copy of a page shown in a phone-wide frame (the served page's CSP
# runs no script, rightly; and a headless window is never under 500 px wide): names
# every element that reaches past the frame's right edge, in the top document.
MEASURE = """<script>
const w = document.documentElement.clientWidth, wide = [];
for (const e of document.body.querySelectorAll("*")) {
  const r = e.getBoundingClientRect();
  if (r.width && r.right > w + 0.5 && !e.closest(".skip, .sr"))
    wide.push(e.tagName + "." + e.className + " " + Math.round(r.right));
}
const all = document.documentElement.scrollWidth;
if (all > w) wide.push("page " + all);
const out = document.createElement("pre"); out.id = "too-wide";
out.textContent = JSON.stringify({width: w, wide: wide}); parent.document.body.append(out);
</script>"""


def test_every_page_at_desktop_and_phone_width(tmp_path: Path) -> None:
    """Screenshots of each page at 1280 and 390 px (kept in PULSEHOOK_SCREENSHOTS when
    set), and at phone width no element wider than the screen: nothing scrolls sideways."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does)")
    shots = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with serve(make_settings(tmp_path)) as (server, client):
        feed(client)
        for name, path in SHOTS.items():
            url = f"{server.url}{path}?token={API_TOKEN}"
            for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
                shot = shots / f"{name}-{label}.png"
                size = f"--window-size={width},{height}"
                chromium(tmp_path / f"{name}-{label}", f"--screenshot={shot}", size, url)
                assert png_size(shot) == (width, height), shot
                assert shot.stat().st_size > 5_000, f"{shot} looks blank"
            page = client.get(path).text.replace("</body>", MEASURE + "</body>")
            host = tmp_path / f"{name}.html"
            host.write_text(
                f'<!doctype html><body style="margin:0"><iframe width="{PHONE[0]}"'
                f' height="{PHONE[1]}" style="border:0" srcdoc="{html.escape(page)}"></iframe>'
            )
            dom = chromium(tmp_path / f"{name}-dom", "--dump-dom", host.as_uri())
            found = json.loads(_measured(dom))
            assert found["width"] == PHONE[0], found
            assert found["wide"] == [], (name, found["wide"])


def _measured(dom: str) -> str:
    start = dom.index('<pre id="too-wide">') + len('<pre id="too-wide">')
    return html.unescape(dom[start : dom.index("</pre>", start)])
