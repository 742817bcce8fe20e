"""What a workflow file says of its schedule, and what GitHub's state of it means (pure).

A workflow's ``on.schedule`` lists its crons (in UTC, as GitHub runs them). The
file is hostile input: it is size-capped, parsed with YAML's safe loader, and any
shape that is not a schedule is read as "no schedule", with the reason kept so the
API can say why a file was not watched.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import yaml

from ..clock import parse_iso_or_none
from ..timing import valid_cron

MAX_BYTES = 512 * 1024  # GitHub's own editor warns far below this; larger is not a workflow
MAX_CRONS = 20  # more schedules than any real workflow has: the rest are left out
WORKFLOWS_DIR = ".github/workflows/"
# GitHub's states for a workflow (the Actions API's ``state``).
ACTIVE = "active"
DISABLED = frozenset({"disabled_inactivity", "disabled_manually", "disabled_fork"})
DELETED = "deleted"  # GitHub's word for a workflow whose file is gone; also one no longer listed


@dataclass(frozen=True)
class Schedules:
    """A workflow file's crons, and why none were read when the file could not be."""

    crons: tuple[str, ...] = ()
    problem: str | None = None


def _triggers(doc: Any) -> Any:
    if not isinstance(doc, dict):
        return None
    # YAML 1.1 reads a bare ``on`` key as the boolean true.
    return doc.get("on", doc.get(True))


def schedules(text: str) -> Schedules:
    """The crons of a workflow file's ``on.schedule``."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return Schedules(problem=f"file larger than {MAX_BYTES // 1024} KiB")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        return Schedules(problem=f"invalid YAML{where}")
    except RecursionError:
        return Schedules(problem="invalid YAML: nested too deeply")
    except (ValueError, KeyError, TypeError) as exc:
        # The safe loader refuses values it cannot build (2024-02-30, !!int seven).
        return Schedules(problem=f"invalid YAML: {type(exc).__name__}")
    triggers = _triggers(doc)
    if not isinstance(triggers, dict):
        return Schedules()  # ``on: push`` or ``on: [push, pull_request]``: no schedule
    listed = triggers.get("schedule")
    if listed is None:
        return Schedules()
    if not isinstance(listed, list):
        return Schedules(problem="on.schedule is not a list")
    crons: list[str] = []
    bad: list[str] = []
    for entry in listed:
        cron = entry.get("cron") if isinstance(entry, dict) else None
        squeezed = " ".join(cron.split()) if isinstance(cron, str) else ""
        if len(squeezed.split()) == 5 and valid_cron(squeezed):
            if squeezed not in crons:
                crons.append(squeezed)
        else:
            bad.append(repr(cron)[:60])
    problem = f"invalid cron {', '.join(bad[:3])}" if bad else None
    return Schedules(crons=tuple(crons[:MAX_CRONS]), problem=problem)


def touches_workflows(paths: list[str]) -> bool:
    """Whether a push changed (added, modified or removed) a workflow file."""
    return any(p.startswith(WORKFLOWS_DIR) for p in paths)


def blob_text(body: Any) -> str | None:
    """A git blob's text (the REST API answers base64); None when it is not one."""
    if not isinstance(body, dict) or body.get("encoding") != "base64":
        return None
    content = body.get("content")
    if not isinstance(content, str) or len(content) > MAX_BYTES * 2:
        return None
    try:
        return base64.b64decode(content, validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


def idle_days(last_activity: str | None, now: str) -> int | None:
    """Whole days from the repository's last activity to ``now`` (ISO strings)."""
    try:
        last, at = parse_iso_or_none(last_activity), parse_iso_or_none(now)
        if last is None or at is None:
            return None
        return max(0, (at - last).days)
    except (ValueError, TypeError):  # not a time, or one without its zone
        return None


# GraphQL: the workflow directory of the default branch, and the texts of the blobs
# that changed, each in one query. GraphQL has a rate limit of its own, so the
# files cost the scan's REST share nothing (tree entries name the blob, and a blob
# with the same sha is the same text: one read per change).
TREE_QUERY = """query($owner: String!, $name: String!) {
  repository(owner: $owner, name: $name) {
    object(expression: "HEAD:.github/workflows") {
      ... on Tree { entries { name type oid } }
    }
  }
}"""
BLOBS_PER_QUERY = 50  # well within GraphQL's node limit, and a repository's workflows


def _owner_name(full_name: str) -> dict[str, str]:
    owner, _, name = full_name.partition("/")
    return {"owner": owner, "name": name}


def tree_query(full_name: str) -> dict[str, Any]:
    """The GraphQL request listing ``.github/workflows`` of a repository's default branch."""
    return {"query": TREE_QUERY, "variables": _owner_name(full_name)}


def _data(body: Any) -> dict[str, Any] | None:
    # An answer with errors and no data (bad credentials, a rate limit) is no answer.
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else None


def tree_entries(body: Any) -> dict[str, str] | None:
    """Path -> blob sha of each file in the answer to ``tree_query``; {} when the
    directory does not exist; None when the answer is not one (ask another way)."""
    data = _data(body)
    if data is None or not isinstance(data.get("repository"), dict):
        return None
    tree = data["repository"].get("object")
    if tree is None:
        return {}  # no such directory on the default branch (or an empty repository)
    entries = tree.get("entries") if isinstance(tree, dict) else None
    if not isinstance(entries, list):
        return {}  # a file where the directory should be
    return {
        f"{WORKFLOWS_DIR}{e['name']}": str(e["oid"])
        for e in entries
        if isinstance(e, dict)
        and e.get("type") == "blob"
        and isinstance(e.get("name"), str)
        and "/" not in e["name"]
        and isinstance(e.get("oid"), str)
    }


def blobs_query(full_name: str, shas: list[str]) -> dict[str, Any]:
    """The GraphQL request for the texts of ``shas`` (at most BLOBS_PER_QUERY)."""
    shas = shas[:BLOBS_PER_QUERY]
    params = "".join(f", $b{i}: GitObjectID!" for i in range(len(shas)))
    fields = " ".join(
        f"b{i}: object(oid: $b{i}) {{ ... on Blob {{ text isBinary isTruncated byteSize }} }}"
        for i in range(len(shas))
    )
    query = (
        f"query($owner: String!, $name: String!{params}) {{"
        f" repository(owner: $owner, name: $name) {{ {fields} }} }}"
    )
    variables: dict[str, Any] = _owner_name(full_name) | {f"b{i}": s for i, s in enumerate(shas)}
    return {"query": query, "variables": variables}


def blob_texts(body: Any, shas: list[str]) -> dict[str, Schedules | str] | None:
    """Sha -> its text, or the Schedules saying why it has none, from the answer to
    ``blobs_query(…, shas)``; None when the answer is not one."""
    data = _data(body)
    repo = data.get("repository") if data is not None else None
    if not isinstance(repo, dict):
        return None
    found: dict[str, Schedules | str] = {}
    for i, sha in enumerate(shas[:BLOBS_PER_QUERY]):
        blob = repo.get(f"b{i}")
        if not isinstance(blob, dict):
            found[sha] = Schedules(problem="not a text file")
        elif blob.get("isTruncated") or (blob.get("byteSize") or 0) > MAX_BYTES:
            found[sha] = Schedules(problem=f"file larger than {MAX_BYTES // 1024} KiB")
        elif blob.get("isBinary") or not isinstance(blob.get("text"), str):
            found[sha] = Schedules(problem="not a text file")
        else:
            found[sha] = blob["text"]
    return found
