"""Channel definitions -> ChannelConfig, with ``${VAR}`` from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..notify.base import ALWAYS_SECRET, ChannelConfig, ChannelKind
from ..notify.pace import parse_rate
from ..notify.registry import KINDS, kind_of

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _substitute(value: Any, env: Mapping[str, str], missing: list[str]) -> tuple[Any, bool]:
    """(value with ${VAR} replaced, whether it used the environment)."""
    if isinstance(value, str) and _VAR.search(value):

        def repl(match: re.Match[str]) -> str:
            if match.group(1) not in env:
                missing.append(match.group(1))
                return ""
            return env[match.group(1)]

        return _VAR.sub(repl, value), True
    if isinstance(value, list):
        items = [_substitute(v, env, missing) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    if isinstance(value, dict):  # a table of options: a webhook channel's headers
        pairs = {k: _substitute(v, env, missing) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(s for _, s in pairs.values())
    return value, False


def _from_env(kind: ChannelKind, env: Mapping[str, str]) -> dict[str, Any] | None:
    """The spec of the channel named after ``kind`` that the environment configures."""
    values = {option: env[var] for option, var in kind.env.items() if env.get(var)}
    if not values:
        return None
    return {"kind": kind.name, **kind.read_env(values)}


def resolve_channels(
    specs: Mapping[str, tuple[Path, Any]], env: Mapping[str, str]
) -> tuple[dict[str, ChannelConfig], dict[str, str], list[str]]:
    """(usable channels, unconfigured channel -> why, problems)."""
    channels: dict[str, ChannelConfig] = {}
    unconfigured: dict[str, str] = {}
    problems: list[str] = []
    merged: dict[str, tuple[str, Any]] = {
        k.name: ("environment", s) for k in KINDS if (s := _from_env(k, env)) is not None
    }
    merged.update({n: (str(p), s) for n, (p, s) in specs.items()})
    for name, (origin, spec) in merged.items():
        if not isinstance(spec, dict):
            problems.append(f"{origin}: channel {name!r} must be a table/dict of options")
            continue
        kind_name = spec.get("kind", name)
        kind = kind_of(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            problems.append(f"{origin}: channel {name!r}: unknown kind {kind_name!r}")
            continue
        options: dict[str, Any] = {}
        secret: set[str] = set()
        missing: list[str] = []
        try:
            rate = parse_rate(spec["rate"]) if "rate" in spec else kind.rate
        except ValueError as exc:
            problems.append(f"{origin}: channel {name!r}: {exc}")
            continue
        for key, raw in spec.items():
            if key in ("kind", "rate"):
                continue
            options[key], from_env = _substitute(raw, env, missing)
            if from_env or key in ALWAYS_SECRET or key in kind.secrets:
                secret.add(key)
        if missing:
            unconfigured[name] = f"set {', '.join(sorted(set(missing)))}"
            continue
        covered = {kind.instead[k] for k in options if k in kind.instead}
        absent = sorted(kind.required - set(options) - covered)
        if absent:
            problems.append(f"{origin}: channel {name!r} ({kind.name}) needs {', '.join(absent)}")
            continue
        channels[name] = ChannelConfig(
            name=name, kind=kind.name, options=options, secret_keys=frozenset(secret), rate=rate
        )
    # Kinds a rule may name before anyone configured them: parked, with the reason.
    for own in KINDS:
        if own.name not in channels and own.name not in unconfigured:
            unconfigured[own.name] = own.hint
    return channels, unconfigured, problems
