"""Badges end to end: signed real payloads in over loopback, SVG and shields.io
endpoint JSON out, with the access rule of PULSEHOOK_PUBLIC_REPOS."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from click.testing import CliRunner
from pydantic import SecretStr, ValidationError

from pulsehook import health
from pulsehook.app import create_app
from pulsehook.cli import main
from pulsehook.settings import Settings
from pulsehook.web.badges import COLOURS, text_width
from pulsehook.web.grades import score_grade, score_text

from . import stores
from .builders import workflow_run
from .conftest import API_TOKEN, AUTH, SECRET, deliver, drained, live, wait_for

PUBLIC, SIBLING, PRIVATE = "octo-org/octo-repo", "octo-org/sibling", "acme/vault"
# A name as hostile as a payload may carry (no "/": it is one path segment each).
HOSTILE = "ev\"il'<svg onload=alert(1)>&amp;/r<script>alert(1)<!--x-->]]>"
SVG_NS = "{http://www.w3.org/2000/svg}"
DRAWN = {"svg", "title", "linearGradient", "stop", "clipPath", "rect", "g", "text"}


def run_of(full_name: str, repo_id: int, run_id: int, conclusion: str) -> dict[str, Any]:
    """GitHub's workflow_run example, on the default branch of another repository."""
    data = workflow_run(run_id, conclusion)
    owner, _, name = full_name.partition("/")
    repo = data["repository"]
    repo.update(id=repo_id, full_name=full_name, name=name)
    repo["owner"] = copy.deepcopy(repo["owner"]) | {"login": owner}
    return data


def make_settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        rules_dir=tmp_path / "none",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        **extra,
    )


@contextmanager
def serve(settings: Settings) -> Iterator[httpx.Client]:
    """The app on loopback; the client sends no token unless a request adds it."""
    with live(create_app(settings)) as server, httpx.Client(base_url=server.url) as client:
        yield client


def feed(client: httpx.Client) -> None:
    """Three repositories: the example one green, a sibling and a private one red."""
    deliver(client, "workflow_run", workflow_run(9001, "success"))
    deliver(client, "workflow_run", run_of(SIBLING, 7001, 9002, "failure"))
    deliver(client, "workflow_run", run_of(PRIVATE, 7002, 9003, "failure"))
    wait_for(lambda: drained(client))
    wait_for(lambda: api_repo(client, PUBLIC)["health_score"] is not None)


def api_repo(client: httpx.Client, name: str) -> dict[str, Any]:
    answer = client.get(f"/api/v1/repos/{name}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.fixture
def public(tmp_path: Path) -> Iterator[httpx.Client]:
    with serve(make_settings(tmp_path, public_repos=PUBLIC)) as client:
        feed(client)
        yield client


def drawn(answer: httpx.Response) -> tuple[ET.Element, list[str], str]:
    """The SVG parsed (only drawing elements in it), its texts, the value's colour."""
    root = ET.fromstring(answer.content)  # noqa: S314 - the service under test, parsed to check it
    tags = {element.tag.removeprefix(SVG_NS) for element in root.iter()}
    assert tags <= DRAWN, tags
    texts = [t.text or "" for t in root.iter(f"{SVG_NS}text")]
    rects = list(root.iter(f"{SVG_NS}rect"))
    label, value = rects[1], rects[2]  # after the clip path's
    assert label.get("fill") == "#555"
    assert int(root.get("width", "0")) == int(label.get("width", "")) + int(value.get("width", ""))
    return root, texts, value.get("fill", "")


def undated(answer: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k != "date"}


def texts_of(texts: list[str]) -> tuple[str, str]:
    """(label, value): each is drawn twice, shadow first."""
    assert len(texts) == 4 and texts[0] == texts[1] and texts[2] == texts[3]
    return texts[0], texts[2]


# --- reading badges ----------------------------------------------------------------------


def test_a_public_repository_reads_without_the_token(public: httpx.Client) -> None:
    row = api_repo(public, PUBLIC)
    score, provisional = row["health_score"], row["provisional"]
    answer = public.get(f"/badge/{PUBLIC}.svg")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/svg+xml; charset=utf-8"
    assert answer.headers["cache-control"] == "max-age=300"
    assert answer.headers["etag"].startswith('"')
    root, texts, fill = drawn(answer)
    assert texts_of(texts) == ("health", score_text(score, provisional))
    assert fill == COLOURS[score_grade(score, provisional)][1]
    assert root.get("aria-label") == f"health: {score_text(score, provisional)}"
    assert public.get(f"/badge/{PUBLIC}.svg", params={"kind": "health"}).content == answer.content

    endpoint = public.get(f"/badge/{PUBLIC}.json")
    assert endpoint.status_code == 200 and endpoint.headers["cache-control"] == "max-age=300"
    assert endpoint.headers["content-type"] == "application/json"
    assert endpoint.json() == {
        "schemaVersion": 1,
        "label": "health",
        "message": score_text(score, provisional),
        "color": COLOURS[score_grade(score, provisional)][0],
    }

    build = public.get(f"/badge/{PUBLIC}.svg", params={"kind": "build"})
    _, texts, fill = drawn(build)
    assert texts_of(texts) == ("build", "passing") and fill == "#4c1"
    assert public.get(f"/badge/{PUBLIC}.json?kind=build").json() == {
        "schemaVersion": 1,
        "label": "build",
        "message": "passing",
        "color": "brightgreen",
    }
    # The label replaced, the badge as wide as its texts; a cache buster is ignored.
    longer = public.get(f"/badge/{PUBLIC}.svg", params={"label": "repository health", "v": "2"})
    root, texts, _ = drawn(longer)
    assert texts_of(texts)[0] == "repository health"
    grown = text_width("repository health") - text_width("health")
    assert int(root.get("width", "")) == int(drawn(answer)[0].get("width", "")) + grown


def test_a_private_repository_is_unknown_without_the_token(public: httpx.Client) -> None:
    unknown_svg = public.get("/badge/nobody/nothing.svg")
    unknown_json = public.get("/badge/nobody/nothing.json")
    assert unknown_svg.status_code == unknown_json.status_code == 404
    assert texts_of(drawn(unknown_svg)[1]) == ("badge", "not found")
    assert unknown_json.json()["error"]["code"] == "not_found"
    wrong = {"Authorization": "Bearer not-the-token-0123456789"}
    for headers in ({}, wrong):
        for suffix, unknown in ((".svg", unknown_svg), (".json", unknown_json)):
            for kind in ("health", "build"):
                hidden = public.get(f"/badge/{PRIVATE}{suffix}?kind={kind}", headers=headers)
                assert hidden.status_code == 404
                assert hidden.content == unknown.content  # nothing tells that it exists
                assert undated(hidden) == undated(unknown)
    # With the API token, any known repository; an unknown one stays unknown.
    seen = public.get(f"/badge/{PRIVATE}.svg?kind=build", headers=AUTH)
    assert seen.status_code == 200
    _, texts, fill = drawn(seen)
    assert texts_of(texts) == ("build", "failing") and fill == "#e05d44"
    assert public.get(f"/badge/{PRIVATE}.json", headers=AUTH).json()["label"] == "health"
    assert public.get("/badge/nobody/nothing.svg", headers=AUTH).status_code == 404
    # The token is never read from the address (it would end up in a README).
    assert public.get(f"/badge/{PRIVATE}.svg", params={"token": API_TOKEN}).status_code == 404
    # The sibling is known, but PULSEHOOK_PUBLIC_REPOS names only the one repository.
    assert public.get(f"/badge/{SIBLING}.svg").status_code == 404


def test_an_owner_pattern_opens_its_repositories(tmp_path: Path) -> None:
    with serve(make_settings(tmp_path, public_repos="Octo-Org/*")) as client:
        feed(client)
        assert client.get(f"/badge/{PUBLIC}.svg").status_code == 200
        sibling = client.get(f"/badge/{SIBLING}.json?kind=build").json()
        assert sibling["message"] == "failing" and sibling["color"] == "red"
        # GitHub's names are case-insensitive: so are the pattern and the address.
        assert client.get("/badge/OCTO-ORG/Octo-Repo.json").status_code == 200
        assert client.get(f"/badge/{PRIVATE}.svg").status_code == 404
        assert client.get("/badge/octo-org/nothing.svg").status_code == 404


def test_no_score_yet_is_unknown_and_grey(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, public_repos=PUBLIC)
    with serve(settings) as client:
        feed(client)
    with stores.connect(settings.db_path) as conn:
        conn.execute("DELETE FROM health")
    with serve(settings.model_copy(update={"worker": False})) as client:
        answer = client.get(f"/badge/{PUBLIC}.json").json()
        assert (answer["message"], answer["color"]) == ("unknown", "lightgrey")
        assert texts_of(drawn(client.get(f"/badge/{PUBLIC}.svg"))[1]) == ("health", "unknown")


NOW = datetime(2026, 1, 1, tzinfo=UTC)
FULL = health.RepoInputs(
    PUBLIC,
    builds=("success",),
    coverage=50.0,
    dependabot_known=True,
    readme=True,
    api_docs=False,
    last_commit_at=NOW,
)


def test_colours_are_the_dashboards(tmp_path: Path) -> None:
    """For each score, the dashboard's grade of the repository page's score is the
    badge's colour, and the number it shows is the badge's."""
    settings = make_settings(tmp_path, public_repos=PUBLIC)
    with serve(settings) as client:
        feed(client)
    by_class = {str(grade): colours for grade, colours in COLOURS.items()}
    shown = re.compile(r'Health score <span class="big"><span class="badge (\w+)">([^<]*)</span>')
    # Every component with data: the score is not provisional, its grade shows.
    full = json.dumps(health.as_dict(health.score(FULL, NOW)))
    # Without the worker: nothing rescores the repository behind the test's back.
    with serve(settings.model_copy(update={"worker": False})) as client:
        grades = set()
        for score in (100.0, 80.0, 79.96, 65.25, 50.0, 49.9, 3.0):
            with stores.connect(settings.db_path) as conn:
                conn.execute("UPDATE health SET score = ?, components = ?", (score, full))
            page = client.get(f"/repos/{PUBLIC}", headers=AUTH)
            match = shown.search(page.text)
            assert match, page.text
            grade, text = match.groups()
            grades.add(grade)
            endpoint = client.get(f"/badge/{PUBLIC}.json").json()
            assert (endpoint["message"], endpoint["color"]) == (text, by_class[grade][0])
            _, texts, fill = drawn(client.get(f"/badge/{PUBLIC}.svg"))
            assert texts_of(texts)[1] == text and fill == by_class[grade][1]
        assert grades == {"good", "fair", "poor"}


def test_a_provisional_score_is_grey_and_says_so(tmp_path: Path) -> None:
    """One green build and nothing else: 100, on a quarter of the weight. The badge is
    grey and says provisional, as the repository page does, never green."""
    settings = make_settings(tmp_path, public_repos=PUBLIC)
    with serve(settings) as client:
        feed(client)
    with stores.connect(settings.db_path) as conn:
        build_only = health.as_dict(
            health.score(health.RepoInputs(PUBLIC, builds=("success",)), NOW)
        )
        conn.execute("UPDATE health SET score = 100.0, components = ?", (json.dumps(build_only),))
    with serve(settings.model_copy(update={"worker": False})) as client:
        row = api_repo(client, PUBLIC)
        assert row["health_score"] == 100.0 and row["provisional"] is True
        assert row["coverage"] == {"components": 1, "of": 6, "weight": 25}
        endpoint = client.get(f"/badge/{PUBLIC}.json").json()
        assert (endpoint["message"], endpoint["color"]) == ("100.0 provisional", "lightgrey")
        _, texts, fill = drawn(client.get(f"/badge/{PUBLIC}.svg"))
        assert texts_of(texts)[1] == "100.0 provisional" and fill == COLOURS["none"][1]
        page = client.get(f"/repos/{PUBLIC}", headers=AUTH).text
        assert '<span class="badge none provisional">100.0 provisional</span>' in page
        assert "rests on 1 of 6 components, 25% of the weight" in page


def test_etag_answers_304(public: httpx.Client) -> None:
    tags = set()
    for path in (f"/badge/{PUBLIC}.svg", f"/badge/{PUBLIC}.json?kind=build"):
        first = public.get(path)
        tag = first.headers["etag"]
        tags.add(tag)
        for given in (tag, f"W/{tag}", f'"other", {tag}', "*"):
            again = public.get(path, headers={"If-None-Match": given})
            assert again.status_code == 304 and again.content == b""
            assert again.headers["etag"] == tag
            assert again.headers["cache-control"] == "max-age=300"
        changed = public.get(path, headers={"If-None-Match": '"other"'})
        assert changed.status_code == 200 and changed.content == first.content
    assert len(tags) == 2  # each badge its own


def test_hostile_labels_and_names_are_escaped(tmp_path: Path) -> None:
    owner, name = HOSTILE.split("/")
    with serve(make_settings(tmp_path, public_repos=PUBLIC)) as client:
        feed(client)
        deliver(client, "workflow_run", run_of(HOSTILE, 7003, 9004, "failure"))
        wait_for(lambda: drained(client))
        label = '</text><script>alert(1)</script><svg onload="x">&amp;\''
        answer = client.get(f"/badge/{PUBLIC}.svg", params={"label": label})
        assert answer.status_code == 200
        root, texts, _ = drawn(answer)  # it parses, and holds nothing but the drawing
        assert texts_of(texts)[0] == label
        assert root.findtext(f"{SVG_NS}title", "").startswith(label + ": ")
        assert client.get(f"/badge/{PUBLIC}.json", params={"label": label}).json()["label"] == label
        address = f"/badge/{quote(owner, safe='')}/{quote(name, safe='')}"
        for headers, status in (({}, 404), (AUTH, 200)):
            badge = client.get(f"{address}.svg?kind=build", headers=headers)
            assert badge.status_code == status
            assert texts_of(drawn(badge)[1])[1] in ("failing", "not found")
            assert client.get(f"{address}.json", headers=headers).status_code == status
        # A label past its bound, or one that is not one line, is refused.
        for bad in ("x" * 65, "two\nlines", "bell\x07"):
            refused = client.get(f"/badge/{PUBLIC}.svg", params={"label": bad})
            assert refused.status_code == 422 and "label" in refused.json()["error"]["message"]
        assert client.get(f"/badge/{PUBLIC}.svg?kind=coverage").status_code == 422


# --- the setting ---------------------------------------------------------------------------


def test_public_repos_is_read_once_into_a_tuple(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSEHOOK_PUBLIC_REPOS", " acme/Shokunin, wolfy1339/* ,,acme/shokunin")
    assert Settings().public_repos == ("acme/shokunin", "wolfy1339/*")
    monkeypatch.delenv("PULSEHOOK_PUBLIC_REPOS")
    assert Settings().public_repos == ()


@pytest.mark.parametrize(
    "entry", ["acme", "acme/", "/shokunin", "*/*", "acme/a/b", "ac me/x", "acme/<x>", "../x"]
)
def test_an_invalid_public_repos_entry_is_refused_by_name(
    entry: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PULSEHOOK_PUBLIC_REPOS", f"acme/fine,{entry}")
    with pytest.raises(ValidationError, match=re.escape(repr(entry))):
        Settings()
    # The command refuses to start, in one line naming the variable and the entry.
    result = CliRunner().invoke(main, ["silence", "list", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "PULSEHOOK_PUBLIC_REPOS" in line and repr(entry) in line
