"""A channel kind is one unit: every registered kind says everything pulsehook needs.

Each kind is a ChannelKind beside its transport, listed in ``notify/registry.py``;
what differs by kind anywhere else (configuration from the environment, or from a
rule file's table alone, the hint when it is missing, credentials, pace, transport)
is read from it, so a kind that lacks any of it fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pulsehook.notify import generic
from pulsehook.notify.base import ALWAYS_SECRET, ChannelKind
from pulsehook.notify.registry import KINDS, KNOWN_KINDS, kind_of, required_options, transport_for
from pulsehook.notify.result import scrub
from pulsehook.rules.channels import resolve_channels


def env_for(kind: ChannelKind) -> dict[str, str]:
    """Every environment variable of ``kind`` set to a value of its own."""
    return {var: f"https://example.org/{option}-value" for option, var in kind.env.items()}


def table_for(kind: ChannelKind) -> dict[str, str]:
    """A rule file's table of ``kind`` with its required and secret options set."""
    options = kind.required | kind.secrets
    return {"kind": kind.name, **{o: f"https://example.org/{o}-value" for o in options}}


def test_names_are_unique_and_known() -> None:
    names = [kind.name for kind in KINDS]
    assert len(names) == len(set(names)) and set(names) <= KNOWN_KINDS
    assert {"slack", "discord", "email", "pagerduty"} <= set(names)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_kind_has_a_transport(kind: ChannelKind) -> None:
    assert callable(kind.send) and kind.send is not generic.send
    assert kind_of(kind.name) is kind and transport_for(kind.name) is kind.send
    assert kind.send.__module__ == f"pulsehook.notify.{kind.name}"  # defined beside it


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_kind_has_a_configuration(kind: ChannelKind) -> None:
    assert kind.required and required_options(kind.name) == set(kind.required)
    if kind.env:
        # The environment alone configures the channel named after the kind...
        assert kind.required <= set(kind.env), "every required option has its variable"
        channels, unconfigured, problems = resolve_channels({}, env_for(kind))
        assert problems == [] and kind.name not in unconfigured
        channel = channels[kind.name]
        assert channel.kind == kind.name and set(channel.options) == set(kind.env)
    else:
        # ...or, for a kind with no environment variables, a rule file's table alone.
        assert kind.name not in resolve_channels({}, {})[0]
        channels, _, problems = resolve_channels({"x": (Path("x.toml"), table_for(kind))}, {})
        assert problems == []
        channel = channels["x"]
        assert channel.kind == kind.name and set(channel.options) == set(table_for(kind)) - {"kind"}
    assert kind.rate > 0 and channel.rate == kind.rate
    # ...and a rule file's table of it needs its required options.
    _, _, problems = resolve_channels({"x": (Path("rules/x.toml"), {"kind": kind.name})}, {})
    assert problems == [
        f"rules/x.toml: channel 'x' ({kind.name}) needs " + ", ".join(sorted(kind.required))
    ]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_kind_has_secrets_that_are_never_shown(kind: ChannelKind) -> None:
    assert kind.secrets
    if kind.env:
        assert kind.secrets <= set(kind.env) | ALWAYS_SECRET
        channel = resolve_channels({}, env_for(kind))[0][kind.name]
    else:  # secret whatever their value: from ${VAR} or written in the table
        channel = resolve_channels({"x": (Path("x.toml"), table_for(kind))}, {})[0]["x"]
    assert kind.secrets <= channel.secret_keys
    for option in kind.secrets:
        assert channel.public()[option] == "***"
        value = str(channel.options[option])
        assert value not in (scrub(f"failed with {value}", channel) or "")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_kind_has_a_hint(kind: ChannelKind) -> None:
    if kind.env:
        assert kind.hint.startswith("set ")
        assert all(kind.env[option] in kind.hint for option in kind.required)
    else:
        assert kind.hint == f"configure a channel of kind {kind.name!r} in the rules directory"
    _, unconfigured, _ = resolve_channels({}, {})
    assert unconfigured[kind.name] == kind.hint


def test_any_other_notifiers_provider_is_a_kind_from_its_schema() -> None:
    telegram = kind_of("telegram")
    assert telegram is not None and telegram.send is generic.send
    assert telegram.required == {"chat_id", "token"} and not telegram.env
    assert kind_of("carrier-pigeon") is None
    channels, _, _ = resolve_channels(
        {"t": (Path("t.toml"), {"kind": "telegram", "chat_id": "1", "token": "t0k3n-value"})}, {}
    )
    assert "token" in channels["t"].secret_keys  # ALWAYS_SECRET: whatever the kind
