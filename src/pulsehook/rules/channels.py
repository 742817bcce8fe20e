"""Channel definitions -> ChannelConfig, with ``${VAR}`` from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..notify.base import ChannelConfig
from ..notify.pace import default_rate, parse_rate
from ..notify.registry import KNOWN_KINDS, required_options

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Option names that are secrets whatever their source.
ALWAYS_SECRET = {"webhook_url", "password", "routing_key", "token", "api_key", "webhook"}

# Channels configured by environment alone (no rule file needed).
ENV_CHANNELS: dict[str, tuple[str, dict[str, str]]] = {
    "email": (
        "email",
        {
            "host": "PULSEHOOK_SMTP_HOST",
            "port": "PULSEHOOK_SMTP_PORT",
            "username": "PULSEHOOK_SMTP_USERNAME",
            "password": "PULSEHOOK_SMTP_PASSWORD",
            "from": "PULSEHOOK_SMTP_FROM",
            "to": "PULSEHOOK_SMTP_TO",
            "tls": "PULSEHOOK_SMTP_STARTTLS",
            "ssl": "PULSEHOOK_SMTP_SSL",
        },
    ),
    "pagerduty": (
        "pagerduty",
        {
            "routing_key": "PULSEHOOK_PAGERDUTY_ROUTING_KEY",
            "events_url": "PULSEHOOK_PAGERDUTY_EVENTS_URL",
        },
    ),
    "slack": ("slack", {"webhook_url": "SLACK_WEBHOOK_URL"}),
    "discord": ("discord", {"webhook_url": "DISCORD_WEBHOOK_URL"}),
}
ENV_HINTS = {
    "email": "set PULSEHOOK_SMTP_HOST and PULSEHOOK_SMTP_TO",
    "pagerduty": "set PULSEHOOK_PAGERDUTY_ROUTING_KEY",
    "slack": "set SLACK_WEBHOOK_URL",
    "discord": "set DISCORD_WEBHOOK_URL",
}


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
    return value, False


def _from_env(name: str, env: Mapping[str, str]) -> dict[str, Any] | None:
    kind, names = ENV_CHANNELS[name]
    options: dict[str, Any] = {opt: env[var] for opt, var in names.items() if env.get(var)}
    if not options:
        return None
    for flag in ("tls", "ssl"):
        if flag in options:
            options[flag] = options[flag].lower() in ("1", "true", "yes", "on")
    if "to" in options:
        options["to"] = [a.strip() for a in options["to"].split(",") if a.strip()]
    return {"kind": kind, **options}


def resolve_channels(
    specs: Mapping[str, tuple[Path, Any]], env: Mapping[str, str]
) -> tuple[dict[str, ChannelConfig], dict[str, str], list[str]]:
    """(usable channels, unconfigured channel -> why, problems)."""
    channels: dict[str, ChannelConfig] = {}
    unconfigured: dict[str, str] = {}
    problems: list[str] = []
    merged: dict[str, tuple[str, Any]] = {
        n: ("environment", s) for n in ENV_CHANNELS if (s := _from_env(n, env)) is not None
    }
    merged.update({n: (str(p), s) for n, (p, s) in specs.items()})
    for name, (origin, spec) in merged.items():
        if not isinstance(spec, dict):
            problems.append(f"{origin}: channel {name!r} must be a table/dict of options")
            continue
        kind = spec.get("kind", name)
        if kind not in KNOWN_KINDS:
            problems.append(f"{origin}: channel {name!r}: unknown kind {kind!r}")
            continue
        options: dict[str, Any] = {}
        secret: set[str] = set()
        missing: list[str] = []
        try:
            rate = parse_rate(spec["rate"]) if "rate" in spec else default_rate(kind)
        except ValueError as exc:
            problems.append(f"{origin}: channel {name!r}: {exc}")
            continue
        for key, raw in spec.items():
            if key in ("kind", "rate"):
                continue
            options[key], from_env = _substitute(raw, env, missing)
            if from_env or key in ALWAYS_SECRET:
                secret.add(key)
        if missing:
            unconfigured[name] = f"set {', '.join(sorted(set(missing)))}"
            continue
        absent = sorted(required_options(kind) - set(options))
        if absent:
            problems.append(f"{origin}: channel {name!r} ({kind}) needs {', '.join(absent)}")
            continue
        channels[name] = ChannelConfig(
            name=name, kind=kind, options=options, secret_keys=frozenset(secret), rate=rate
        )
    # Kinds a rule may name before anyone configured them: parked, with the reason.
    for name, hint in ENV_HINTS.items():
        if name not in channels and name not in unconfigured:
            unconfigured[name] = hint
    return channels, unconfigured, problems
