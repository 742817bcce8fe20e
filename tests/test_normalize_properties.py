"""Property tests: normalization on any JSON, and the webhook signature check."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pulsehook.errors import NormalizerFailed, SignatureInvalid, UnsupportedEvent
from pulsehook.facts import FACT_TYPES
from pulsehook.github.normalize import NORMALIZERS, normalize, snapshot
from pulsehook.github.payload import timestamp
from pulsehook.github.verify import sign, verify

from .conftest import PAYLOADS, payload

FACT_CLASSES = tuple(FACT_TYPES.values())
EVENTS = sorted(NORMALIZERS)

# Every real example, with the event it was delivered as (the file name's first part).
REAL = {path.stem: payload(path.stem) for path in sorted(PAYLOADS.glob("*.json"))}
REAL_NAMES = sorted(REAL)

Path = tuple[str | int, ...]

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)
event_names = st.sampled_from(EVENTS) | st.text(max_size=30)

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def event_of(name: str) -> str:
    return name.split(".", 1)[0]


def paths(data: Any, prefix: Path = ()) -> list[Path]:
    """Every nested position below ``data`` (not the root itself)."""
    found: list[Path] = []
    if isinstance(data, dict):
        for key, value in data.items():
            found.append((*prefix, key))
            found.extend(paths(value, (*prefix, key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.append((*prefix, index))
            found.extend(paths(value, (*prefix, index)))
    return found


PATHS = {name: paths(data) for name, data in REAL.items()}


def replaced(data: Any, path: Path, value: Any) -> Any:
    """A deep copy of ``data`` with the value at ``path`` replaced."""
    result = copy.deepcopy(data)
    target = result
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return result


@st.composite
def mutated_payloads(draw: st.DrawFn) -> tuple[str, Any]:
    """A real payload with one randomly chosen nested value replaced by arbitrary JSON."""
    name = draw(st.sampled_from(REAL_NAMES))
    path = draw(st.sampled_from(PATHS[name]))
    value = draw(json_values)
    return event_of(name), replaced(REAL[name], path, value)


def outcome(event: str, data: Any) -> list[Any] | type[UnsupportedEvent]:
    """normalize's result, checking it is a list of facts or UnsupportedEvent.

    A normalizer that raises comes out as NormalizerFailed (an UnsupportedEvent
    too): that is a crash, and fails here with the normalizer's own error.
    """
    try:
        facts = normalize(event, data)
    except NormalizerFailed as exc:
        raise AssertionError(f"the {event} normalizer crashed: {exc}") from exc.__cause__
    except UnsupportedEvent:
        return UnsupportedEvent
    assert isinstance(facts, list)
    for fact in facts:
        assert isinstance(fact, FACT_CLASSES), fact
    return facts


# --------------------------------------------------------------------------- normalize


def test_real_payloads_cover_every_supported_event() -> None:
    # pulsehook's own events (scan findings, CI reports) have no GitHub example.
    github_events = {e for e in EVENTS if not e.startswith("pulsehook.")}
    assert {event_of(name) for name in REAL_NAMES} == github_events


@pytest.mark.parametrize("name", REAL_NAMES)
def test_real_payloads_normalize_to_facts(name: str) -> None:
    result = outcome(event_of(name), copy.deepcopy(REAL[name]))
    assert isinstance(result, list)


@SETTINGS
@given(event=event_names, data=json_values)
def test_any_json_gives_facts_or_unsupported(event: str, data: Any) -> None:
    outcome(event, data)


@SETTINGS
@given(event=st.sampled_from(EVENTS), data=st.dictionaries(st.text(max_size=10), json_values))
def test_any_json_object_gives_facts_or_unsupported(event: str, data: dict[str, Any]) -> None:
    outcome(event, data)


@SETTINGS
@given(case=mutated_payloads())
def test_mutated_real_payload_gives_facts_or_unsupported(case: tuple[str, Any]) -> None:
    event, data = case
    outcome(event, data)


@SETTINGS
@given(case=mutated_payloads(), other=st.sampled_from(EVENTS))
def test_mutated_real_payload_as_other_event(case: tuple[str, Any], other: str) -> None:
    # A payload delivered under the wrong event name must not break anything either.
    _, data = case
    outcome(other, data)


@SETTINGS
@given(case=mutated_payloads())
def test_snapshot_of_mutated_payload(case: tuple[str, Any]) -> None:
    _, data = case
    seen = snapshot(data)
    if seen is not None:
        assert seen.action == "seen"
        assert isinstance(seen.repo, str)
        assert isinstance(seen.repo_id, int)


@SETTINGS
@given(event=event_names, data=json_values)
def test_normalize_is_deterministic_on_any_json(event: str, data: Any) -> None:
    before = copy.deepcopy(data)
    first = outcome(event, data)
    assert data == before  # the input is not changed
    assert outcome(event, copy.deepcopy(data)) == first


@SETTINGS
@given(case=mutated_payloads())
def test_normalize_is_deterministic_on_mutated_payloads(case: tuple[str, Any]) -> None:
    event, data = case
    before = copy.deepcopy(data)
    first = outcome(event, data)
    assert data == before
    assert outcome(event, copy.deepcopy(data)) == first


# --------------------------------------------------------------------------- timestamps

# Within years 1000..9998 (see test_normalize.py for the range-edge bugs) any
# ISO-8601 time with any UTC offset normalizes to the same instant in UTC.
aware_times = st.datetimes(
    min_value=datetime(1000, 1, 2),
    max_value=datetime(9998, 12, 30),
    # Real offsets are whole minutes (Python's fromisoformat drops sub-minute ones).
    timezones=st.builds(
        timezone,
        st.integers(min_value=-23 * 60, max_value=23 * 60).map(
            lambda minutes: timedelta(minutes=minutes)
        ),
    ),
)


@SETTINGS
@given(when=aware_times)
def test_timestamp_iso_strings_normalize_to_utc(when: datetime) -> None:
    utc = when.astimezone(UTC)
    expected = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
    )
    assert timestamp(when.isoformat()) == expected
    assert timestamp(when.isoformat().replace("+00:00", "Z")) == expected


@SETTINGS
@given(seconds=st.integers(min_value=0, max_value=253402300799))
def test_timestamp_epoch_seconds(seconds: int) -> None:
    utc = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    assert timestamp(seconds) == utc.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- signatures

# GitHub's published example ("Validating webhook deliveries").
GITHUB_SECRET = b"It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

secrets = st.binary(min_size=1, max_size=100)


def hmac_key(secret: bytes) -> bytes:
    """The block HMAC-SHA256 really uses: long keys are hashed, short ones zero-padded."""
    key = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
    return key.ljust(64, b"\0")


def test_github_test_vector() -> None:
    assert sign(GITHUB_BODY, GITHUB_SECRET) == GITHUB_SIGNATURE
    verify(GITHUB_BODY, GITHUB_SIGNATURE, [GITHUB_SECRET])


def test_github_test_vector_with_rotation() -> None:
    verify(GITHUB_BODY, GITHUB_SIGNATURE, [b"the old secret", GITHUB_SECRET])
    verify(GITHUB_BODY, GITHUB_SIGNATURE, (s for s in [b"x", GITHUB_SECRET]))


def test_github_test_vector_wrong_secrets() -> None:
    with pytest.raises(SignatureInvalid):
        verify(GITHUB_BODY, GITHUB_SIGNATURE, [b"the old secret", b"another"])
    with pytest.raises(SignatureInvalid):
        verify(GITHUB_BODY, GITHUB_SIGNATURE, [])
    with pytest.raises(SignatureInvalid):
        verify(GITHUB_BODY + b"\n", GITHUB_SIGNATURE, [GITHUB_SECRET])


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        GITHUB_SIGNATURE.removeprefix("sha256="),
        "sha1=" + GITHUB_SIGNATURE.removeprefix("sha256="),
        GITHUB_SIGNATURE.upper(),
        GITHUB_SIGNATURE[:-1],
        GITHUB_SIGNATURE + "0",
        "sha256=",
        GITHUB_SIGNATURE[:-1] + "é",
    ],
)
def test_malformed_signature_is_invalid(signature: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        verify(GITHUB_BODY, signature, [GITHUB_SECRET])


@settings(max_examples=200, deadline=None)
@given(body=st.binary(), secret=secrets)
def test_sign_verify_round_trip(body: bytes, secret: bytes) -> None:
    signature = sign(body, secret)
    assert signature.startswith("sha256=")
    assert len(signature) == len("sha256=") + 64
    verify(body, signature, [secret])


@settings(max_examples=200, deadline=None)
@given(body=st.binary(), secret=secrets, other=secrets)
def test_other_secret_is_invalid(body: bytes, secret: bytes, other: bytes) -> None:
    # Keys HMAC pads to the same block (b"k" and b"k\0") are the same key.
    assume(hmac_key(other) != hmac_key(secret))
    with pytest.raises(SignatureInvalid):
        verify(body, sign(body, secret), [other])


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(),
    secret=secrets,
    old=st.lists(secrets, max_size=3),
)
def test_rotation_any_matching_secret_passes(body: bytes, secret: bytes, old: list[bytes]) -> None:
    verify(body, sign(body, secret), [*old, secret])
    verify(body, sign(body, secret), [secret, *old])


@settings(max_examples=200, deadline=None)
@given(body=st.binary(), secret=secrets, data=st.data())
def test_flipped_signature_is_invalid(body: bytes, secret: bytes, data: st.DataObject) -> None:
    signature = sign(body, secret)
    index = data.draw(st.integers(min_value=len("sha256="), max_value=len(signature) - 1))
    new = data.draw(st.sampled_from("0123456789abcdef").filter(lambda c: c != signature[index]))
    flipped = signature[:index] + new + signature[index + 1 :]
    with pytest.raises(SignatureInvalid):
        verify(body, flipped, [secret])


@settings(max_examples=200, deadline=None)
@given(body=st.binary(min_size=1), secret=secrets, data=st.data())
def test_changed_body_is_invalid(body: bytes, secret: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    changed = bytearray(body)
    changed[index] ^= 1 << bit
    with pytest.raises(SignatureInvalid):
        verify(bytes(changed), sign(body, secret), [secret])
