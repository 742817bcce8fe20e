"""Validating a webhook body before it is stored: JSON in UTF-8, or a clear 400."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsehook.errors import BadRequest
from pulsehook.web.webhooks import validate_document

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON, st.one_of(st.none(), st.text()), st.one_of(st.none(), st.text()))
def test_any_json_document_is_accepted_and_summarized(
    extra: Any, action: str | None, repo: str | None
) -> None:
    doc: dict[str, Any] = {"extra": extra}
    if action is not None:
        doc["action"] = action
    if repo is not None:
        doc["repository"] = {"full_name": repo, "id": 1}
    assert validate_document(orjson.dumps(doc)) == (action, repo)


@given(JSON)
def test_documents_that_are_not_objects_are_accepted_without_summary(value: Any) -> None:
    if isinstance(value, dict):
        return
    assert validate_document(json.dumps(value).encode()) == (None, None)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_summarized_or_refused_with_bad_request(data: bytes) -> None:
    try:
        validate_document(data)
    except BadRequest as exc:
        assert "not valid JSON" in str(exc)
    else:
        orjson.loads(data)  # what it accepted, processing can read


def test_fields_of_the_wrong_type_are_left_out() -> None:
    body = b'{"action": 3, "repository": {"full_name": ["x"]}}'
    assert validate_document(body) == (None, None)
    assert validate_document(b'{"repository": "octo/repo"}') == (None, None)


@pytest.mark.parametrize("body", [b'{"a": "\\ud800"}', b"[" * 2000 + b"]" * 2000])
def test_what_processing_could_not_read_is_refused(body: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    with pytest.raises(BadRequest):
        validate_document(body)
