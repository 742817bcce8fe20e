"""Every API input goes through a typed model: bad bodies answer 400 (unreadable) or
422 (invalid) naming the field, nothing the client sends gives a 5xx, and the
OpenAPI description is the models' own schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, get_args
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pulsehook.app import create_app
from pulsehook.clock import FrozenClock
from pulsehook.settings import Settings
from pulsehook.store.deliveries import STATUSES
from pulsehook.web import models
from pulsehook.web.openapi import REF, document, parameters

from .conftest import AUTH, deliver, drained, live, payload, wait_for

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(settings: Settings) -> Iterator[httpx.Client]:
    with (
        live(create_app(settings, clock=FrozenClock(NOW))) as srv,
        httpx.Client(base_url=srv.url, headers=AUTH, timeout=10) as c,
    ):
        yield c


def refused(answer: httpx.Response, status: int, *names: str) -> str:
    """The answer is ``status`` in the one error shape, its message naming ``names``."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == {400: "bad_request", 413: "payload_too_large"}.get(
        status, "invalid"
    )
    message: str = body["error"]["message"]
    for name in names:
        assert name in message, message
    return message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rule": ["a"]}, "'rule'"),  # was a 503 storage_unavailable
        ({"rule": "a", "duration": "99999999999h"}, "'duration'"),  # was a 500
        ({"rule": "a", "duration": 1e300}, "'duration'"),
        ({"rule": "a", "duration": 10**30}, "'duration'"),
        ({"rule": "a", "duration": -1}, "'duration'"),
        ({"rule": "a", "duration": "soon"}, "'duration'"),
        ({"rule": "a", "duration": True}, "'duration'"),
        ({"rule": "a", "ends_at": "9999-12-31T23:59:59-14:00"}, "'ends_at'"),  # was a 500
        ({"rule": "a", "ends_at": "9999-12-31T00:00:00Z"}, "'ends_at'"),
        ({"rule": "a", "ends_at": "0001-01-01T00:00:00+14:00"}, "'ends_at'"),
        ({"rule": "a", "ends_at": "99999-01-01T00:00:00Z"}, "'ends_at'"),
        ({"rule": "a", "ends_at": "tomorrow"}, "'ends_at'"),
        ({"rule": "a", "ends_at": 1767225600}, "'ends_at'"),
        ({"rule": "a", "ends_at": "2026-06-01T00:00:00"}, "'ends_at'"),
        ({"rule": "a", "starts_at": "x" * 10_000}, "'starts_at'"),
        ({"rule": "a", "cron": "0 0 30 2 *", "duration": "1h"}, "'cron'"),
        ({"rule": "a", "cron": "every night", "duration": "1h"}, "'cron'"),
        ({"rule": "a", "cron": "0 22 * * *"}, "duration"),
        ({"rule": "a", "unknown": 1}, "'unknown'"),
        ({"rule": "x" * 201}, "'rule'"),
        ({"repo": 5}, "'repo'"),
        ({"rule": "a", "comment": {"text": "deploy"}}, "'comment'"),
        ({"rule": "a", "comment": "c" * 2001}, "'comment'"),
        ({"duration": "1h"}, "rule"),
        # One that never ends is refused, as `pulsehook silence add` refuses it.
        ({"rule": "a"}, "never ends"),
        ({"rule": "a", "ends_at": "2026-01-02T00:00:00Z", "duration": "1h"}, "not both"),
        ({"rule": "", "repo": None, "duration": "1h"}, "repo"),
    ],
)
def test_an_invalid_silence_is_422_naming_the_field(
    client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    refused(client.post("/api/v1/silences", json=body), 422, field)
    assert client.get("/api/v1/silences").json() == {"silences": []}


def test_the_message_never_repeats_the_input(client: httpx.Client) -> None:
    key = "k" * 5000
    message = refused(client.post("/api/v1/silences", json={"rule": "a", key: 1}), 422, "kkk")
    assert len(message) < 200
    many = {f"field{i}": i for i in range(50)}
    message = refused(client.post("/api/v1/silences", json={"rule": "a"} | many), 422)
    assert "field0" in message and "and 45 more" in message and "field49" not in message
    secret = "do-not-echo-" * 10
    message = refused(client.post("/api/v1/silences", json={"rule": [secret]}), 422, "'rule'")
    assert "do-not-echo" not in message


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"rule": "caf\xe9"}', "UTF-8"),
        (b'{"rule": "\\ud800"}', "surrogate"),  # SQLite cannot store a lone surrogate
        (b"not json", "not JSON"),
        (b'{"rule": NaN}', "not JSON"),
        (b'{"rule": "a",}', "not JSON"),
        (b"[" * 2000, "not JSON"),  # json.loads would raise RecursionError
        (b'["a"]', "not an array"),
        (b'"a"', "not a string"),
        (b"17", "object"),
        (b"null", "object"),
        (b"", "empty"),
    ],
)
def test_an_unreadable_body_is_400(client: httpx.Client, raw: bytes, reason: str) -> None:
    refused(client.post("/api/v1/silences", content=raw, headers=JSON), 400, "body", reason)


def test_a_body_past_the_limit_is_413(client: httpx.Client) -> None:
    big = json.dumps({"rule": "a", "comment": "c" * models.MAX_BODY_BYTES}).encode()
    refused(client.post("/api/v1/silences", content=big, headers=JSON), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"rule": "a", "comment": "'
        for _ in range(100):
            yield b"c" * 1024
        yield b'"}'

    refused(client.post("/api/v1/silences", content=chunks(), headers=JSON), 413)


def test_a_bad_body_leaves_storage_healthy(client: httpx.Client) -> None:
    """It used to reach SQLite, fail there, and mark the database failing (503 /readyz)."""
    refused(client.post("/api/v1/silences", json={"rule": ["a"]}), 422, "'rule'")
    assert client.get("/readyz").json()["status"] == "ready"
    assert client.get("/api/v1/status").json()["database"] == "ok"


@pytest.mark.parametrize(
    "raw",
    ["99999999999999999999", "9223372036854775808", "9" * 5000, "0", "-1", "abc", "1.5", "%00"],
)
def test_a_silence_id_out_of_range_is_422(client: httpx.Client, raw: str) -> None:
    refused(client.delete(f"/api/v1/silences/{raw}"), 422, "'silence_id'")


def test_a_silence_id_in_range_but_unknown_is_404(client: httpx.Client) -> None:
    answer = client.delete(f"/api/v1/silences/{2**63 - 1}")
    assert answer.status_code == 404
    assert answer.json() == {"error": {"code": "not_found", "message": f"no silence {2**63 - 1}"}}


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/alerts", {"limit": "1e9"}, "'limit'"),
        ("/api/v1/alerts", {"limit": "0"}, "'limit'"),
        ("/api/v1/alerts", {"limit": "1001"}, "'limit'"),
        ("/api/v1/alerts", {"limit": "-5"}, "'limit'"),
        ("/api/v1/alerts", {"limit": "²"}, "'limit'"),  # str.isdigit() but int() refused: a 500
        ("/api/v1/alerts", {"state": "open"}, "'state'"),
        ("/api/v1/deliveries", {"before": "-1"}, "'before'"),
        ("/api/v1/deliveries", {"before": str(2**63)}, "'before'"),
        ("/api/v1/deliveries", {"before": "9" * 5000}, "'before'"),
        ("/api/v1/deliveries", {"limit": "501"}, "'limit'"),
        ("/api/v1/deliveries", {"status": "done"}, "'status'"),
        ("/api/v1/deliveries", {"event": "e" * 101}, "'event'"),
        ("/api/v1/outbox", {"status": "lost"}, "'status'"),
        ("/api/v1/outbox", {"limit": "1e9"}, "'limit'"),
        ("/api/v1/vulnerabilities", {"severity": "nope"}, "'severity'"),
        ("/api/v1/vulnerabilities", {"limit": "99999999999999999999999"}, "'limit'"),
        ("/api/v1/vulnerabilities", {"package": "p" * 301}, "'package'"),
        ("/api/v1/builds", {"limit": "5001"}, "'limit'"),
        ("/api/v1/builds", {"branch": "b" * 301}, "'branch'"),
        ("/api/v1/repos/o/r/metrics", {"days": "-1"}, "'days'"),
        ("/api/v1/repos/r/metrics", {"days": "3651"}, "'days'"),
        ("/api/v1/repos", {"sort": "size"}, "'sort'"),
        ("/api/v1/repos", {"cursor": "bm9wZQ"}, "'cursor'"),
        ("/api/v1/repos", {"min_score": "101"}, "'min_score'"),
        ("/api/v1/repos", {"limit": "1001"}, "'limit'"),
        ("/api/v1/rules", {"x": "1"}, "'x'"),
        ("/api/v1/silences", {"limit": "5"}, "'limit'"),
        ("/api/v1/health", {"token": "t"}, "'token'"),
        ("/api/v1/repos/" + "o" * 101 + "/r", {}, "'owner'"),
        ("/api/v1/repos/" + "r" * 101, {}, "'name'"),
    ],
)
def test_a_bad_query_or_path_is_422_naming_it(
    client: httpx.Client, path: str, params: dict[str, str], field: str
) -> None:
    refused(client.get(path, params=params), 422, field)


def test_an_empty_parameter_is_as_if_not_given(client: httpx.Client) -> None:
    answer = client.get("/api/v1/alerts", params={"state": "", "limit": ""})
    assert answer.status_code == 200 and answer.json() == {"alerts": [], "count": 0}
    answer = client.get("/api/v1/deliveries", params={"status": "", "before": "", "limit": "1"})
    assert answer.status_code == 200 and answer.json() == {"deliveries": [], "next_before": None}


def test_silence_fields_keep_their_meaning(client: httpx.Client) -> None:
    plain = client.post("/api/v1/silences", json={"repo": "octo-org/*", "duration": 3600})
    recurring = client.post(
        "/api/v1/silences",
        json={
            "rule": "build_*",
            "starts_at": "2026-01-01T02:00:00+02:00",
            "cron": "0 22 * * 1-5",
            "duration": "PT8H",
            "comment": "nightly",
        },
    )
    until = client.post(
        "/api/v1/silences", json={"rule": "r", "ends_at": "2026-01-02T00:00:00Z", "duration": ""}
    )
    assert [a.status_code for a in (plain, recurring, until)] == [201, 201, 201]
    assert plain.json() == {"id": 1}
    rows = {r["id"]: r for r in client.get("/api/v1/silences").json()["silences"]}
    assert rows[1] | {"created_at": None} == {
        "id": 1,
        "rule": None,
        "repo": "octo-org/*",
        "starts_at": "2026-01-01T00:00:00Z",
        "ends_at": "2026-01-01T01:00:00Z",
        "cron": None,
        "duration_s": None,
        "comment": None,
        "created_at": None,
        "active": True,
    }
    assert (rows[2]["starts_at"], rows[2]["ends_at"], rows[2]["duration_s"]) == (
        "2026-01-01T00:00:00Z",
        None,
        8 * 3600,
    )
    assert rows[3]["ends_at"] == "2026-01-02T00:00:00Z" and rows[3]["duration_s"] is None
    assert client.delete("/api/v1/silences/1").json() == {"deleted": 1}


def test_a_bare_repository_name_is_matched_literally(client: httpx.Client) -> None:
    """``%`` and ``_`` in a bare name are characters, not LIKE's wildcards."""
    assert deliver(client, "workflow_run", payload("workflow_run.completed")).status_code == 202
    wait_for(lambda: drained(client))
    assert client.get("/api/v1/repos/octo-repo").json()["name"] == "octo-org/octo-repo"
    for name in ("%25", "octo_repo", "%25repo", "octo-rep_"):
        answer = client.get(f"/api/v1/repos/{name}")
        assert answer.status_code == 404, name
        assert client.get(f"/api/v1/repos/{name}/metrics").status_code == 404, name


def test_a_wrong_method_lists_the_allowed_ones(client: httpx.Client) -> None:
    answer = client.request("OPTIONS", "/api/v1/silences")
    assert answer.status_code == 405
    assert set(answer.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert answer.json()["error"]["code"] == "method_not_allowed"


def test_delivery_statuses_are_the_stores() -> None:
    assert get_args(models.DeliveryStatus) == STATUSES


def test_openapi_is_generated_from_the_models() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    assert schemas["SilenceIn"] == models.SilenceIn.model_json_schema(ref_template=REF)
    assert schemas["Error"]["required"] == ["error"]
    post = doc["paths"]["/api/v1/silences"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SilenceIn"
    }
    assert {"400", "401", "413", "415", "422", "503"} <= set(post["responses"])
    assert "security" not in post and doc["security"] == [{"token": []}]
    assert doc["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    deliveries = doc["paths"]["/api/v1/deliveries"]["get"]
    assert deliveries["parameters"] == parameters(models.DeliveriesQuery, "query")
    limit = next(p for p in deliveries["parameters"] if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}
    assert {"401", "422", "503"} <= set(deliveries["responses"])
    (silence_id,) = doc["paths"]["/api/v1/silences/{silence_id}"]["delete"]["parameters"]
    assert silence_id["required"] and silence_id["schema"]["maximum"] == 2**63 - 1
    assert doc["paths"]["/healthz"]["get"]["security"] == []


# Any JSON value at all, and objects with the silence's own keys holding any JSON value.
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities are not JSON: json.dumps writes them anyway
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["rule", "repo", "starts_at", "ends_at", "duration", "cron", "comment"]
SILENCE_LIKE = st.dictionaries(
    st.sampled_from(FIELDS),
    ANY_JSON
    | st.sampled_from(["1h", "PT10M", "0 22 * * 1-5", "2026-01-01T00:00:00Z", "build_*", ""]),
    max_size=7,
)
GETS = {
    "/api/v1/alerts": ["state", "limit"],
    "/api/v1/outbox": ["status", "limit"],
    "/api/v1/deliveries": ["status", "event", "limit", "before"],
    "/api/v1/vulnerabilities": ["severity", "state", "repo", "package", "limit"],
    "/api/v1/builds": ["repo", "branch", "status", "limit"],
    "/api/v1/repos/octo-org/octo-repo/metrics": ["days"],
    "/api/v1/repos": ["limit", "cursor", "sort", "owner", "q", "state", "min_score", "max_score"],
    "/api/v1/rules": [],
    "/api/v1/silences": [],
    "/api/v1/health": [],
}
# Random strings, and the numbers in them an attacker tries: past int64, and digits
# that str.isdigit() accepts but int() does not (², ٣).
VALUES = (
    st.text()
    | st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=25)
)
FUZZ = hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def answered_in_shape(answer: httpx.Response) -> None:
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        body = answer.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
        assert isinstance(body["error"]["message"], str)
        assert len(body["error"]["message"]) <= models.MAX_MESSAGE


def test_random_json_as_a_silence_never_gives_a_5xx(client: httpx.Client) -> None:
    @FUZZ
    @given(ANY_JSON | SILENCE_LIKE)
    def post(value: Any) -> None:
        raw = json.dumps(value).encode()  # lone surrogates become \ud800 escapes
        answer = client.post("/api/v1/silences", content=raw, headers=JSON)
        answered_in_shape(answer)

    post()
    # What was accepted can be listed (a stored silence that breaks reading is a 500 later).
    assert client.get("/api/v1/silences").status_code == 200


def test_random_query_strings_never_give_a_5xx(client: httpx.Client) -> None:
    @FUZZ
    @given(
        st.sampled_from(sorted(GETS)).flatmap(
            lambda path: st.tuples(
                st.just(path),
                st.dictionaries(st.sampled_from([*GETS[path], "x"]) | st.text(), VALUES),
            )
        ),
        VALUES,
    )
    def get(where: tuple[str, dict[str, str]], segment: str) -> None:
        path, params = where
        answered_in_shape(client.get(path, params=params))
        answered_in_shape(client.delete(f"/api/v1/silences/{quote(segment, safe='')}"))
        answered_in_shape(client.get(f"/api/v1/repos/{quote(segment, safe='')}"))

    get()
