"""Security events -> Vulnerability facts (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ..facts import ADVISORY_SEVERITIES, Fact, Vulnerability
from .payload import Json, integer, obj, repository, text, timestamp

# GitHub's advisory database says "moderate" where Dependabot's API says "medium".
_SEVERITY_ALIASES = {"moderate": "medium"}

ADVISORY_PAGES = "https://github.com/advisories/"
_GHSA = re.compile(r"GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}")

# Legacy repository_vulnerability_alert actions -> the state they leave the alert in.
_LEGACY_STATE = {"create": "open", "reopen": "open", "dismiss": "dismissed", "resolve": "fixed"}


def severity(value: str | None) -> str:
    value = (value or "").lower()
    value = _SEVERITY_ALIASES.get(value, value)
    return value if value in ADVISORY_SEVERITIES else "unknown"


def advisory_page(advisory: Json, ghsa: str | None) -> str | None:
    """The advisory's page: GitHub's own among its references, else made from its id
    (only a well-formed one: the id is payload text)."""
    refs = advisory.get("references")
    for ref in refs if isinstance(refs, list) else []:
        url = text(ref, "url") if isinstance(ref, dict) else None
        if url and url.startswith(ADVISORY_PAGES):
            return url
    if ghsa and _GHSA.fullmatch(ghsa):
        return ADVISORY_PAGES + ghsa
    return None


def dependabot_alert(payload: Json) -> list[Vulnerability]:
    full_name, repo_id, _ = repository(payload)
    alert = obj(payload, "alert")
    number = integer(alert, "number")
    if number is None:
        return []
    advisory = obj(alert, "security_advisory")
    vuln = obj(alert, "security_vulnerability")
    dependency = obj(alert, "dependency")
    package = obj(dependency, "package") or obj(vuln, "package")
    action = text(payload, "action") or ""
    # The alert's own state is authoritative; actions GitHub adds later
    # (like "withdrawn" or "auto_reopened" once were) need no code here.
    state = text(alert, "state") or {"withdrawn": "withdrawn"}.get(action, "open")
    cve = text(advisory, "cve_id")
    if not cve:
        ids = advisory.get("identifiers")
        for ident in ids if isinstance(ids, list) else []:
            if text(ident, "type") == "CVE":
                cve = text(ident, "value")
    ghsa = text(advisory, "ghsa_id")
    return [
        Vulnerability(
            repo=full_name,
            repo_id=repo_id,
            number=number,
            action=action,
            state=state,
            severity=severity(text(advisory, "severity") or text(vuln, "severity")),
            package=text(package, "name"),
            ecosystem=text(package, "ecosystem"),
            manifest=text(dependency, "manifest_path"),
            ghsa_id=ghsa,
            cve_id=cve,
            summary=text(advisory, "summary"),
            description=text(advisory, "description"),
            url=text(alert, "html_url"),
            created_at=timestamp(alert.get("created_at")),
            updated_at=timestamp(alert.get("updated_at") or alert.get("created_at")),
            fixed_at=timestamp(alert.get("fixed_at")),
            dismissed_at=timestamp(alert.get("dismissed_at") or alert.get("auto_dismissed_at")),
            affected_range=text(vuln, "vulnerable_version_range"),
            patched_version=text(obj(vuln, "first_patched_version"), "identifier"),
            advisory_url=advisory_page(advisory, ghsa),
        )
    ]


def repository_vulnerability_alert(payload: Json) -> list[Vulnerability]:
    full_name, repo_id, _ = repository(payload)
    alert = obj(payload, "alert")
    number = integer(alert, "number") or integer(alert, "id")
    if number is None:
        return []
    action = text(payload, "action") or ""
    state = text(alert, "state") or _LEGACY_STATE.get(action, "open")
    created = timestamp(alert.get("created_at"))
    fixed = timestamp(alert.get("fixed_at"))
    dismissed = timestamp(alert.get("dismissed_at"))
    ext = text(alert, "external_identifier")
    return [
        Vulnerability(
            repo=full_name,
            repo_id=repo_id,
            number=number,
            action=action,
            state=state,
            severity=severity(text(alert, "severity")),
            package=text(alert, "affected_package_name"),
            ecosystem=None,
            manifest=None,
            ghsa_id=text(alert, "ghsa_id"),
            cve_id=ext if ext and ext.upper().startswith("CVE-") else None,
            summary=text(alert, "affected_range"),
            description=None,
            url=text(alert, "external_reference"),
            created_at=created,
            updated_at=max(filter(None, (created, fixed, dismissed)), default=None),
            fixed_at=fixed,
            dismissed_at=dismissed,
            affected_range=text(alert, "affected_range"),
            patched_version=text(alert, "fixed_in"),
            advisory_url=None,
        )
    ]


# The events this module reads, each with its normalizer (github/normalize.py gathers them).
EVENTS: dict[str, Callable[[Json], Sequence[Fact]]] = {
    "dependabot_alert": dependabot_alert,
    "repository_vulnerability_alert": repository_vulnerability_alert,
}
