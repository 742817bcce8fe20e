"""GitHub's dependency graph as an SPDX SBOM, read into packages and edges (pure).

``GET /repos/{owner}/{repo}/dependency-graph/sbom`` answers ``{"sbom": {...}}``:
an SPDX 2.3 document whose ``packages`` are the repository itself (the element
the document ``DESCRIBES``) and every dependency, and whose ``relationships``
say which ``DEPENDS_ON`` which. Package names come as ``ecosystem:name``; the
purl in ``externalRefs`` is the precise form, and it is what is read here, in
Dependabot's names for ecosystems, so an open alert finds its package.

Every string is a payload's: bounded, never trusted to be well formed. A graph
past ``MAX_PACKAGES`` or ``MAX_EDGES`` is kept cut short and says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ..facts import Package

MAX_PACKAGES = 10_000
MAX_EDGES = 50_000
TEXT_LIMIT = 256  # characters of a name, version or SPDX id
REPOSITORY = "SPDXRef-Repository"  # GitHub's id for the repository's own package

# purl types -> Dependabot's ecosystem names (the vulnerabilities' ``ecosystem``).
ECOSYSTEMS = {
    "pypi": "pip",
    "gem": "rubygems",
    "golang": "go",
    "cargo": "rust",
    "githubactions": "actions",
    "github": "actions",
    "hex": "erlang",
}
# Files whose change moves the graph: a push touching one asks for it again.
MANIFESTS = frozenset(
    {
        "package.json",
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "requirements.txt",
        "pipfile",
        "pipfile.lock",
        "pyproject.toml",
        "poetry.lock",
        "uv.lock",
        "setup.py",
        "setup.cfg",
        "gemfile",
        "gemfile.lock",
        "go.mod",
        "go.sum",
        "cargo.toml",
        "cargo.lock",
        "pom.xml",
        "build.gradle",
        "build.gradle.kts",
        "gradle.lockfile",
        "composer.json",
        "composer.lock",
        "packages.config",
        "packages.lock.json",
        "directory.packages.props",
        "pubspec.yaml",
        "pubspec.lock",
        "mix.exs",
        "mix.lock",
        "package.swift",
        "package.resolved",
    }
)
_WORKFLOWS = re.compile(r"(^|/)\.github/workflows/[^/]+\.ya?ml$")
_PIP_NAME = re.compile(r"[-_.]+")


@dataclass(frozen=True)
class Graph:
    """A repository's dependencies: packages (the repository itself left out), and
    which depends on which; ``root`` is the repository's SPDX id."""

    root: str | None
    packages: tuple[Package, ...]
    edges: tuple[tuple[str, str], ...]
    truncated: bool = False


def package_key(ecosystem: str | None, name: str) -> str:
    """The name an alert and a graph agree on: case-blind, and pip's -_. alike."""
    folded = name.strip().lower()
    return _PIP_NAME.sub("-", folded) if ecosystem == "pip" else folded


def touches_manifest(paths: Iterable[str]) -> bool:
    """Whether any of these changed files is a dependency manifest or lock file
    (or a workflow, whose actions the graph lists)."""
    for path in paths:
        if not isinstance(path, str):
            continue
        if path.rsplit("/", 1)[-1].lower() in MANIFESTS or _WORKFLOWS.search(path):
            return True
    return False


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value[:TEXT_LIMIT]


def from_purl(purl: str) -> tuple[str, str, str | None] | None:
    """``pkg:type/namespace/name@version`` -> (ecosystem, name, version)."""
    if not purl.startswith("pkg:"):
        return None
    rest = purl[4:].split("#", 1)[0].split("?", 1)[0]
    kind, _, path = rest.partition("/")
    if not kind or not path:
        return None
    path, _, version = path.partition("@")
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts:
        return None
    ecosystem = ECOSYSTEMS.get(kind.lower(), kind.lower())
    # Maven names a package group:artifact; the others namespace/name (npm: @scope/name).
    name = ":".join(parts) if ecosystem == "maven" else "/".join(parts)
    return ecosystem, name[:TEXT_LIMIT], (unquote(version)[:TEXT_LIMIT] or None)


def _package(item: Mapping[str, Any]) -> Package | None:
    spdx_id = _text(item.get("SPDXID"))
    if spdx_id is None:
        return None
    refs = item.get("externalRefs")
    for ref in refs if isinstance(refs, list) else []:
        if isinstance(ref, dict) and ref.get("referenceType") == "purl":
            locator = _text(ref.get("referenceLocator"))
            read = from_purl(locator) if locator else None
            if read is not None:
                kind, purl_name, version = read
                return Package(spdx_id, kind, purl_name, _text(item.get("versionInfo")) or version)
    name = _text(item.get("name"))
    if name is None:
        return None
    ecosystem, sep, bare = name.partition(":")
    if sep and bare and "/" not in ecosystem:
        low = ecosystem.lower()
        return Package(spdx_id, ECOSYSTEMS.get(low, low), bare, _text(item.get("versionInfo")))
    return Package(spdx_id, None, name, _text(item.get("versionInfo")))


def parse(document: Any) -> Graph:
    """The graph an SBOM answer (or its ``sbom`` member) describes. Anything not
    shaped as SPDX is left out; nothing here raises on a payload."""
    doc = document.get("sbom", document) if isinstance(document, dict) else None
    if not isinstance(doc, dict):
        return Graph(None, (), ())
    raw_relations = doc.get("relationships")
    relations = (
        [r for r in raw_relations if isinstance(r, dict)] if isinstance(raw_relations, list) else []
    )
    described = [
        str(r.get("relatedSpdxElement"))
        for r in relations
        if r.get("relationshipType") == "DESCRIBES" and _text(r.get("relatedSpdxElement"))
    ]
    root = described[0][:TEXT_LIMIT] if described else None
    raw_packages = doc.get("packages")
    # Older exports name no DESCRIBES: their root is the conventional id.
    if (
        root is None
        and isinstance(raw_packages, list)
        and any(isinstance(p, dict) and p.get("SPDXID") == REPOSITORY for p in raw_packages)
    ):
        root = REPOSITORY
    found: dict[str, Package] = {}
    truncated = False
    for item in raw_packages if isinstance(raw_packages, list) else []:
        if not isinstance(item, dict):
            continue
        package = _package(item)
        if package is None or package.spdx_id == root or package.spdx_id in found:
            continue
        if len(found) >= MAX_PACKAGES:
            truncated = True
            break
        found[package.spdx_id] = package
    known = set(found) | ({root} if root else set())
    edges: dict[tuple[str, str], None] = {}
    for r in relations:
        if r.get("relationshipType") != "DEPENDS_ON":
            continue
        parent, child = _text(r.get("spdxElementId")), _text(r.get("relatedSpdxElement"))
        if parent in known and child in found and parent != child:
            if len(edges) >= MAX_EDGES:
                truncated = True
                break
            edges[(str(parent), str(child))] = None
    return Graph(root, tuple(found.values()), tuple(edges), truncated)


def slim(document: Any) -> dict[str, Any]:
    """The SBOM with only what ``parse`` reads, still SPDX-shaped: what is stored."""
    graph = parse(document)
    packages: list[dict[str, Any]] = []
    if graph.root is not None:
        packages.append({"SPDXID": graph.root, "name": "repository"})
    for p in graph.packages:
        entry: dict[str, Any] = {"SPDXID": p.spdx_id, "name": p.name}
        if p.version is not None:
            entry["versionInfo"] = p.version
        if p.ecosystem is not None:
            entry["name"] = f"{p.ecosystem}:{p.name}"
        packages.append(entry)
    relationships: list[dict[str, str]] = []
    if graph.root is not None:
        relationships.append(
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": graph.root,
            }
        )
    relationships += [
        {"spdxElementId": a, "relationshipType": "DEPENDS_ON", "relatedSpdxElement": b}
        for a, b in graph.edges
    ]
    doc = document.get("sbom", document) if isinstance(document, dict) else {}
    created = (doc.get("creationInfo") or {}) if isinstance(doc, dict) else {}
    out: dict[str, Any] = {"packages": packages, "relationships": relationships}
    if isinstance(created, dict) and _text(created.get("created")):
        out["creationInfo"] = {"created": _text(created.get("created"))}
    if graph.truncated:
        out["truncated"] = True
    return out


def tree(
    graph_root: str | None,
    packages: Sequence[Package],
    edges: Sequence[tuple[str, str]],
    *,
    limit: int = 2_000,
) -> list[tuple[int, Package]]:
    """The packages as an indented list (depth, package): the repository's direct
    dependencies first, each followed by what it depends on; a package is shown
    in full once, and those nothing reaches come last at depth 0."""
    by_id = {p.spdx_id: p for p in packages}
    children: dict[str, list[str]] = {}
    for parent, child in edges:
        children.setdefault(parent, []).append(child)
    for kids in children.values():
        kids.sort(key=lambda i: (by_id[i].name.lower(), i) if i in by_id else ("", i))
    shown: set[str] = set()
    out: list[tuple[int, Package]] = []
    # Iterative depth-first walk: a hostile graph may be deep or cyclic.
    stack: list[tuple[int, str]] = [(0, c) for c in reversed(children.get(graph_root or "", []))]
    while stack and len(out) < limit:
        depth, node = stack.pop()
        if node in shown or node not in by_id:
            continue
        shown.add(node)
        out.append((depth, by_id[node]))
        stack += [(depth + 1, c) for c in reversed(children.get(node, [])) if c not in shown]
    for p in sorted(packages, key=lambda p: (p.name.lower(), p.spdx_id)):
        if len(out) >= limit:
            break
        if p.spdx_id not in shown:
            shown.add(p.spdx_id)
            out.append((0, p))
    return out
