"""Every dependency: GitHub's SBOM read by scans and after manifest pushes, kept per
repository, counted in the metrics and shown in the API and the dashboard."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from pulsehook.app import create_app
from pulsehook.clock import FrozenClock
from pulsehook.facts import Package, Push
from pulsehook.github import sbom
from pulsehook.github.normalize import normalize
from pulsehook.settings import Settings

from .conftest import API_TOKEN, AUTH, SECRET, deliver, drained, live, payload, wait_for
from .github_standin import ORG, TOKEN, standin

DOC = payload("rest/dependency_graph.sbom")
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


# -- reading an SBOM (pure) ---------------------------------------------------------


def test_the_documented_answer_reads_as_packages_and_edges() -> None:
    graph = sbom.parse(DOC)
    assert graph.root == "SPDXRef-Repository"
    names = {(p.ecosystem, p.name, p.version) for p in graph.packages}
    assert ("pip", "requests", "2.31.0") in names
    assert ("npm", "@octokit/rest", "20.0.2") in names
    assert ("actions", "actions/checkout", "4") in names
    assert len(graph.packages) == 9  # the repository itself is not a dependency
    ids = {p.name: p.spdx_id for p in graph.packages}
    direct = {child for parent, child in graph.edges if parent == graph.root}
    assert ids["requests"] in direct and ids["urllib3"] not in direct
    assert (ids["jinja2"], ids["markupsafe"]) in graph.edges


def test_slim_keeps_what_parse_reads() -> None:
    slimmed = sbom.slim(DOC)
    assert sbom.parse(slimmed) == sbom.parse(DOC)
    assert len(json.dumps(slimmed)) < len(json.dumps(DOC)) / 2
    assert slimmed["creationInfo"] == {"created": "2026-03-01T10:00:00Z"}


def test_purls_in_dependabots_names() -> None:
    assert sbom.from_purl("pkg:maven/org.apache/commons-text@1.9") == (
        "maven",
        "org.apache:commons-text",
        "1.9",
    )
    assert sbom.from_purl("pkg:npm/%40babel/core@7.0.0") == ("npm", "@babel/core", "7.0.0")
    assert sbom.from_purl("pkg:golang/github.com/pkg/errors@v0.9.1?x=y#sub") == (
        "go",
        "github.com/pkg/errors",
        "v0.9.1",
    )
    assert sbom.from_purl("pkg:cargo/serde") == ("rust", "serde", None)
    assert sbom.from_purl("not a purl") is None
    assert sbom.from_purl("pkg:npm") is None


def test_names_alerts_and_graphs_agree_on() -> None:
    assert sbom.package_key("pip", "Charset_Normalizer") == "charset-normalizer"
    assert sbom.package_key("npm", "Left_Pad") == "left_pad"  # only pip folds -_.


def test_older_exports_without_describes_use_the_conventional_root() -> None:
    doc = copy.deepcopy(DOC)
    doc["sbom"]["relationships"] = [
        r for r in doc["sbom"]["relationships"] if r["relationshipType"] != "DESCRIBES"
    ]
    graph = sbom.parse(doc)
    assert graph.root == "SPDXRef-Repository" and len(graph.packages) == 9


def test_a_graph_past_its_bounds_is_kept_cut_short() -> None:
    packages = [
        {"SPDXID": f"SPDXRef-{i}", "name": f"npm:p{i}", "versionInfo": "1"}
        for i in range(sbom.MAX_PACKAGES + 5)
    ]
    graph = sbom.parse({"sbom": {"packages": packages, "relationships": []}})
    assert graph.truncated and len(graph.packages) == sbom.MAX_PACKAGES


hostile = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=15), inner, max_size=5)
    ),
    max_leaves=40,
)


@given(hostile)
def test_any_payload_reads_without_raising(value: Any) -> None:
    sbom.parse(value)
    sbom.parse({"sbom": {"packages": value, "relationships": value}})
    sbom.slim(value)


def test_the_tree_shows_each_package_once_and_survives_cycles() -> None:
    a, b, c, d = (Package(f"S-{n}", "npm", n, "1") for n in "abcd")
    edges = [("root", "S-a"), ("S-a", "S-b"), ("S-b", "S-a"), ("S-a", "S-c"), ("root", "S-c")]
    rows = sbom.tree("root", [a, b, c, d], edges)
    assert [(depth, p.name) for depth, p in rows] == [(0, "a"), (1, "b"), (1, "c"), (0, "d")]
    assert len(sbom.tree("root", [a, b, c, d], edges, limit=2)) == 2


def test_a_push_changing_a_manifest_says_so() -> None:
    push = copy.deepcopy(payload("push"))
    [plain] = normalize("push", push)
    assert isinstance(plain, Push) and not plain.manifests  # README.md only
    push["commits"][0]["modified"] = ["services/api/requirements.txt"]
    [moved] = normalize("push", push)
    assert isinstance(moved, Push) and moved.manifests
    assert sbom.touches_manifest([".github/workflows/ci.yml"])  # its actions are in the graph
    assert not sbom.touches_manifest(["docs/package.json.md", 7])  # type: ignore[list-item]


# -- the service ----------------------------------------------------------------------


def _settings(tmp_path: Path, url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        rules_dir=tmp_path / "none",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        github_token=SecretStr(TOKEN),
        github_api_url=url,
        scan_org=ORG,
        scan_interval=3600,  # one round: what follows comes from pushes
        graph_refresh_seconds=0.1,
    )


def _graph(client: httpx.Client, name: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/api/v1/repos/{name}/dependencies").json()
    return body


def _manifest_push(after: str) -> dict[str, Any]:
    push = copy.deepcopy(payload("push"))
    push["ref"] = "refs/heads/main"
    push["after"] = after
    push["repository"].update(full_name="acme/api", id=70001, name="api", default_branch="main")
    push["commits"][0]["modified"] = ["requirements.txt"]
    return push


def test_scans_read_every_dependency_and_a_manifest_push_reads_it_again(tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    with standin() as gh:
        app = create_app(_settings(tmp_path, gh.url), clock=clock)
        with live(app) as srv, httpx.Client(base_url=srv.url, headers=AUTH, timeout=10) as client:
            wait_for(lambda: _graph(client, "acme/api").get("state") == "ok", timeout=20)
            wait_for(lambda: _graph(client, "acme/web").get("state") == "disabled", timeout=20)
            wait_for(lambda: drained(client))

            graph = _graph(client, "acme/api")
            assert graph["total"] == 9 and graph["vulnerable"] == 1  # requests: alert 3, open
            by_name = {p["name"]: p for p in graph["packages"]}
            assert by_name["requests"]["vulnerable"] and by_name["requests"]["direct"]
            assert not by_name["urllib3"]["direct"] and not by_name["urllib3"]["vulnerable"]
            assert by_name["urllib3"]["id"] in by_name["requests"]["depends_on"]

            # The guide's figures: every package, the vulnerable ones, the outdated ones.
            api = client.get("/api/v1/repos/acme/api").json()["metrics"]["dependencies"]
            assert api == {"total": 9, "outdated": 1, "vulnerable": 1, "graph": "ok"}
            web = client.get("/api/v1/repos/acme/web").json()["metrics"]["dependencies"]
            assert web["total"] is None and web["graph"] == "disabled"  # unknown, not zero

            # Across the ecosystem: who uses a package, with which versions.
            users = client.get("/api/v1/dependencies", params={"package": "Requests"}).json()
            assert users["repositories"] == [
                {
                    "repo": "acme/api",
                    "ecosystem": "pip",
                    "name": "requests",
                    "versions": ["2.31.0"],
                    "vulnerable": True,
                }
            ]
            folded = client.get("/api/v1/dependencies", params={"package": "charset_normalizer"})
            assert [r["name"] for r in folded.json()["repositories"]] == ["charset-normalizer"]
            listed = client.get("/api/v1/dependencies", params={"q": "oct"}).json()
            assert [p["name"] for p in listed["packages"]] == ["@octokit/rest"]
            assert client.get("/api/v1/dependencies").json()["total"] == 9
            assert client.get("/api/v1/dependencies", params={"limit": 0}).status_code == 422
            unknown = client.get("/api/v1/repos/acme/nope/dependencies")
            assert unknown.status_code == 404

            # The pages: the tree with the vulnerable package marked, who uses what.
            tree = client.get("/dependencies/acme/api")
            assert tree.status_code == 200
            assert 'class="vulnerable"' in tree.text and "requests" in tree.text
            assert "└ " in tree.text  # urllib3 under requests
            assert "GitHub has no dependency graph" in client.get("/dependencies/acme/web").text
            page = client.get("/dependencies", params={"package": "requests"}).text
            assert "Who uses requests" in page and "2.31.0" in page
            # Every repository's tree is a link away, the vulnerable ones first.
            assert page.index("/dependencies/acme/api") < page.index("/dependencies/acme/legacy")
            assert "2 whose graph GitHub does not have" in page
            assert client.get("/dependencies/acme/nope").status_code == 404
            assert "graph disabled" in client.get("/repos/acme/web").text

            # A push to the default branch changing a manifest: read again, once the
            # last read is ten minutes old, with the ETag of the last answer.
            asked = [p for p in gh.paths() if p.startswith("/repos/acme/api/dependency-graph")]
            assert len(asked) == 1
            doc = gh.sites["acme/api"].sbom
            assert doc is not None
            doc["sbom"]["packages"].append(
                {"SPDXID": "SPDXRef-pip-httpx-0.27.0", "name": "pip:httpx", "versionInfo": "0.27.0"}
            )
            doc["sbom"]["relationships"].append(
                {
                    "relationshipType": "DEPENDS_ON",
                    "spdxElementId": "SPDXRef-Repository",
                    "relatedSpdxElement": "SPDXRef-pip-httpx-0.27.0",
                }
            )
            clock.advance(timedelta(minutes=11))
            assert deliver(client, "push", _manifest_push("1" * 40)).status_code == 202
            wait_for(lambda: _graph(client, "acme/api")["total"] == 10, timeout=20)
            # Unchanged since: the next manifest push costs a 304 and stores nothing.
            clock.advance(timedelta(minutes=11))
            before = gh.count(304)
            assert deliver(client, "push", _manifest_push("2" * 40)).status_code == 202
            wait_for(lambda: gh.count(304) > before, timeout=20)
            wait_for(lambda: drained(client))
            assert _graph(client, "acme/api")["total"] == 10
            sbom_calls = [c for c in gh.calls if "/dependency-graph/" in c[1]]
            assert [s for _, p, s in sbom_calls if p.startswith("/repos/acme/api/")] == [
                200,
                200,
                304,
            ]
