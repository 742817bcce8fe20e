"""A kind of fact is one unit: its class, its normalizer and its state writer.

Every kind in ``facts.KINDS`` has a normalizer (or is internal: pulsehook makes
it from the state), a state writer (or is listed as applied nowhere), a subject
and a description of its own; every list of kinds is derived from ``KINDS``; and
an unknown kind is an error wherever it turns up, never a silent default.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_args, get_type_hints

import pytest

from pulsehook import facts
from pulsehook.alerts import lifecycle
from pulsehook.facts import KINDS, Fact, Kind
from pulsehook.github import normalize
from pulsehook.notify import escape
from pulsehook.rules import messages
from pulsehook.rules.evaluate import FACT_FIELDS
from pulsehook.store import state

KIND_IDS = [k.name for k in KINDS]


def given_by_normalizers() -> dict[type[Any], set[str]]:
    """The kinds each normalizer's return type names: kind -> the events giving it."""
    found: dict[type[Any], set[str]] = {}
    for event, handler in normalize.NORMALIZERS.items():
        (item,) = get_args(get_type_hints(handler)["return"])  # list[Build | Coverage]
        for kind in get_args(item) or (item,):
            found.setdefault(kind, set()).add(event)
    return found


def sample(kind: type[Any]) -> dict[str, Any]:
    """A fact of ``kind`` as plain data, every field filled by its type."""
    values = {"str": "x", "int": 1, "float": 1.0, "bool": True}
    data: dict[str, Any] = {}
    for f in dataclasses.fields(kind):
        base = str(f.type).split(" | ")[0]
        data[f.name] = values.get(base, {} if base.startswith("dict") else ())
    return facts.fact_dict(kind(**data))


def test_kinds_is_the_one_list_of_kinds() -> None:
    assert get_args(Fact) == KINDS  # the type checker's view is the same list
    assert len({k.name for k in KINDS}) == len(KINDS)
    assert {k.name: k for k in KINDS} == facts.FACT_TYPES
    for kind in KINDS:
        assert issubclass(kind, Kind) and dataclasses.is_dataclass(kind)
        assert "name" in vars(kind), f"{kind.__name__} names itself"


def test_every_other_list_of_kinds_is_derived() -> None:
    assert tuple(k.name for k in KINDS if k.for_rules) == facts.RULE_FACTS
    assert frozenset(k.name for k in KINDS if k.one_shot) == lifecycle.EVENT_KINDS
    assert set(FACT_FIELDS) == set(facts.RULE_FACTS)
    # Bookkeeping kinds stay out of the rules; pushes and repository events are news.
    assert not {"hook", "profile", "issue_activity"} & set(facts.RULE_FACTS)
    assert {"push", "repo"} <= lifecycle.EVENT_KINDS


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_every_kind_has_a_normalizer_or_is_internal(kind: type[Any]) -> None:
    given = given_by_normalizers()
    if kind.internal:
        assert kind not in given, f"{kind.__name__} is internal, yet {given[kind]} give it"
    else:
        assert kind in given, f"no normalizer gives {kind.__name__}; is it internal?"


def test_normalizers_give_only_kinds() -> None:
    assert set(given_by_normalizers()) <= set(KINDS)


def test_each_event_is_read_by_one_module() -> None:
    listed = [event for module in normalize.MODULES for event in module.EVENTS]
    assert len(listed) == len(set(listed)) == len(normalize.NORMALIZERS)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_every_kind_has_a_state_writer_or_none_explicitly(kind: type[Any]) -> None:
    has_writer, none = kind in state.WRITERS, kind in state.NOT_APPLIED
    assert has_writer != none, f"{kind.__name__}: register a writer, or list it as not applied"


def test_state_writers_are_for_kinds_only() -> None:
    assert set(state.WRITERS) | set(state.NOT_APPLIED) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_every_kind_has_its_own_subject_and_description(kind: type[Any]) -> None:
    assert "subject" in vars(kind) and "describe" in vars(kind), kind.__name__
    data = sample(kind)
    assert isinstance(lifecycle.subject(kind.name, data), str)
    line = messages.describe(kind.name, data)
    assert isinstance(line, str) and escape.plain(line).strip()
    assert isinstance(lifecycle.closes(kind.name, data), bool)
    assert isinstance(lifecycle.recovers(kind.name, data), bool)
    # A stored fact may come from an older version, with fields missing.
    assert isinstance(lifecycle.subject(kind.name, {}), str)
    assert isinstance(messages.describe(kind.name, {}), str)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_a_description_marks_every_value_it_takes_from_the_fact(kind: type[Any]) -> None:
    hostile = "<!channel>"
    data = {k: hostile if isinstance(v, str) else v for k, v in sample(kind).items()}
    line = messages.describe(kind.name, data)
    # Every payload string is marked for escaping: Slack sees it as text.
    assert "<!channel>" not in escape.slack(line)


def test_an_unknown_kind_is_an_error_not_a_default() -> None:
    with pytest.raises(LookupError, match="unknown fact kind 'nope'"):
        lifecycle.subject("nope", {})
    with pytest.raises(LookupError):
        messages.describe("nope", {})
    with pytest.raises(LookupError):
        lifecycle.recovers("nope", {})
    with pytest.raises(LookupError):
        lifecycle.closes("nope", {})


def test_a_fact_without_a_state_writer_is_an_error_not_skipped() -> None:
    @dataclasses.dataclass(frozen=True)
    class Unregistered(Kind):
        name = "unregistered"
        repo: str = "octo/repo"
        repo_id: int | None = 1

    with pytest.raises(LookupError, match="no state writer"):
        state.writer(Unregistered)
    with pytest.raises(LookupError, match=r"store/health\.py"):
        state.writer(facts.Health)
