"""The conformance suite every provider adapter passes (cases: cases.py).

Each stream fixture is fed whole, one byte at a time, and in 7-byte pieces; the
normalized events must match the fixture's expectation after `merge()`, and
must keep the event contract (see `check_invariants`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from gateway.providers import registry
from gateway.providers.base import Provider
from gateway.streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    first_token_index,
    is_token,
)

from .cases import (
    ERROR_POLICY,
    ERROR_STATUSES,
    STREAM_SCENARIOS,
    AdapterCase,
    HttpError,
    Stream,
    load_cases,
)

CASES = load_cases()
FEED_MODES = ("whole", "bytewise", "chunks7")
STREAM_PARAMS = [
    pytest.param(case, scenario, id=f"{case.id}-{scenario}")
    for case in CASES
    for scenario in STREAM_SCENARIOS
]
CASE_PARAMS = [pytest.param(case, id=case.id) for case in CASES]
ERROR_PARAMS = [
    pytest.param(case, err, id=f"{case.id}-{err.status}-{i}")
    for case in CASES
    for i, err in enumerate(case.errors)
]


def merge(events: list[Event]) -> list[Event]:
    """Join consecutive text deltas, reasoning deltas, and fragments of one tool call."""
    out: list[Event] = []
    for event in events:
        last = out[-1] if out else None
        if type(event) is TextDelta and type(last) is TextDelta:
            out[-1] = TextDelta(last.text + event.text)
        elif type(event) is ReasoningDelta and type(last) is ReasoningDelta:
            out[-1] = ReasoningDelta(last.text + event.text)
        elif (
            type(event) is ToolCallDelta
            and type(last) is ToolCallDelta
            and last.index == event.index
        ):
            out[-1] = ToolCallDelta(
                event.index,
                last.id or event.id,
                last.name or event.name,
                last.arguments + event.arguments,
            )
        else:
            out.append(event)
    return out


def masked(actual: list[Event], expected: list[Event]) -> list[Event]:
    """`actual` with error messages blanked where the expected error's message is ""."""
    out = list(actual)
    for i, (got, want) in enumerate(zip(actual, expected, strict=False)):
        if type(got) is UpstreamError and type(want) is UpstreamError and not want.message:
            out[i] = dataclasses.replace(got, message="")
    return out


def pieces(data: bytes, mode: str) -> Iterator[bytes]:
    if mode == "whole":
        yield data
        return
    size = 1 if mode == "bytewise" else 7
    for i in range(0, len(data), size):
        yield data[i : i + size]


def decode(provider: Provider, data: bytes, mode: str) -> tuple[list[Event], list[int]]:
    """All events of one stream, and for each how many bytes had been fed when it came out."""
    decoder = provider.decoder()
    events: list[Event] = []
    offsets: list[int] = []
    fed = 0
    for piece in pieces(data, mode):
        fed += len(piece)
        out = decoder.feed(piece)
        events += out
        offsets += [fed] * len(out)
    tail = decoder.close()
    events += tail
    offsets += [fed] * len(tail)
    assert decoder.close() == [], "close() must be idempotent"
    return events, offsets


def check_invariants(events: list[Event], secret: str | None) -> None:
    """The event contract, whatever the wire format."""
    metas = [e for e in events if type(e) is ResponseMeta]
    assert len(metas) <= 1, f"ResponseMeta more than once: {metas}"
    finishes = [i for i, e in enumerate(events) if type(e) is Finish]
    assert len(finishes) <= 1, "more than one Finish"
    errors = [i for i, e in enumerate(events) if type(e) is UpstreamError]
    assert len(errors) <= 1, "more than one UpstreamError"
    if errors:
        assert errors[0] == len(events) - 1, "nothing may follow an UpstreamError"
    seen_tools: set[int] = set()
    for i, event in enumerate(events):
        if type(event) is TextDelta or type(event) is ReasoningDelta:
            assert event.text, f"empty {type(event).__name__} at {i}"
        if type(event) is ToolCallDelta:
            if event.index in seen_tools:
                assert event.id is None and event.name is None, (
                    f"id/name repeated on a later fragment of tool call {event.index}"
                )
            seen_tools.add(event.index)
            assert is_token(event), f"empty tool call fragment at {i}"
        if finishes and i > finishes[0]:
            assert not is_token(event), f"output after Finish at {i}: {event}"
        if type(event) is UpstreamError:
            assert event.message, "an UpstreamError needs a message"
            assert not secret or secret not in event.message, "API key in an error message"


def fixture(case: AdapterCase, scenario: str) -> Stream:
    if scenario not in case.streams:
        pytest.fail(f"case {case.id!r} has no {scenario!r} entry (use None if inexpressible)")
    stream = case.streams[scenario]
    if stream is None:
        pytest.skip(f"{case.kind} wire format cannot express {scenario!r}")
    return stream


@pytest.mark.parametrize("mode", FEED_MODES)
@pytest.mark.parametrize(("case", "scenario"), STREAM_PARAMS)
def test_stream(case: AdapterCase, scenario: str, mode: str) -> None:
    stream = fixture(case, scenario)
    events, _ = decode(registry.create(case.settings), stream.wire, mode)
    check_invariants(events, case.settings.api_key)
    got = merge(events)
    assert masked(got, stream.expected) == merge(stream.expected)


@pytest.mark.parametrize(("case", "scenario"), STREAM_PARAMS)
def test_first_token_needs_its_bytes(case: AdapterCase, scenario: str) -> None:
    """The race is decided on tokens: keep-alives, role chunks, metadata, usage are not
    tokens, and the first token appears only once its own bytes have arrived."""
    stream = fixture(case, scenario)
    if stream.first_token is None:
        pytest.skip("fixture names no first token")
    events, offsets = decode(registry.create(case.settings), stream.wire, "bytewise")
    first = first_token_index(events)
    assert first >= 0, "no token at all"
    assert not any(is_token(e) for e in events[:first])
    token = events[first]
    if type(token) is ToolCallDelta:
        assert stream.first_token in (token.id, token.name, token.arguments), token
    else:
        assert type(token) is TextDelta or type(token) is ReasoningDelta
        assert token.text == stream.first_token
    where = stream.wire.find(stream.first_token.encode())
    assert where >= 0, "first_token must appear verbatim in the wire bytes"
    assert offsets[first] >= where + len(stream.first_token.encode())


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_case_is_complete(case: AdapterCase) -> None:
    assert case.kind in registry.kinds()
    assert set(case.streams) == set(STREAM_SCENARIOS), "one entry per scenario (None to skip)"
    prelude = case.streams["prelude"]
    assert prelude is not None and prelude.first_token, "the prelude scenario is required"
    statuses = {err.status for err in case.errors}
    assert set(ERROR_STATUSES) <= statuses, f"missing error fixtures for {ERROR_STATUSES}"
    assert any(
        err.status == 429
        and any(name.lower().startswith("retry-after") for name in err.headers)
        and "retry_after_s" in err.expected
        for err in case.errors
    ), "a 429 fixture with a retry-after header is required"


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_parse_response(case: AdapterCase) -> None:
    events = registry.create(case.settings).parse_response(case.response.wire)
    check_invariants(events, case.settings.api_key)
    assert masked(merge(events), case.response.expected) == merge(case.response.expected)


@pytest.mark.parametrize(("case", "err"), ERROR_PARAMS)
def test_parse_error(case: AdapterCase, err: HttpError) -> None:
    error = registry.create(case.settings).parse_error(err.status, err.headers, err.body)
    assert type(error) is UpstreamError
    assert error.status == err.status
    expected: dict[str, Any] = {}
    if err.status in ERROR_POLICY:
        expected["retryable"], expected["opens_circuit"] = ERROR_POLICY[err.status]
    expected.update(err.expected)
    for name, value in expected.items():
        assert getattr(error, name) == value, f"{name}: {getattr(error, name)!r} != {value!r}"
    assert error.message
    key = case.settings.api_key
    assert not key or key not in error.message


@pytest.mark.parametrize("body", [b"", b"<html><body>Bad Gateway</body></html>"])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_parse_error_without_json(case: AdapterCase, body: bytes) -> None:
    provider = registry.create(case.settings)
    for status, retryable in ((502, True), (400, False)):
        error = provider.parse_error(status, {}, body)
        assert (error.status, error.retryable) == (status, retryable)
        assert error.message and error.retry_after_s is None


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_build_request(case: AdapterCase) -> None:
    shape = case.request
    before = orjson.dumps([shape.request.messages, shape.request.params, shape.request.extra])
    request = registry.create(case.settings).build_request(shape.request, case.target)
    after = orjson.dumps([shape.request.messages, shape.request.params, shape.request.extra])
    assert before == after, "build_request must not modify the ChatRequest"
    assert request.method == "POST"
    assert request.url == shape.url
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert len(headers) == len(request.headers), "a header name appears twice"
    assert headers.get("content-type", "").startswith("application/json")
    if shape.auth is None:
        assert "authorization" not in headers
    else:
        name, value = shape.auth
        assert headers.get(name) == value
    for name, value in shape.headers.items():
        assert headers.get(name) == value
    body = orjson.loads(request.body)
    for name, value in shape.body.items():
        assert body.get(name) == value, f"body[{name!r}]: {body.get(name)!r} != {value!r}"
    for name in shape.absent:
        assert name not in body, f"body has {name!r}"
    key = case.settings.api_key
    if key:
        assert key not in request.url and key.encode() not in request.body


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_build_request_passes_unknown_fields(case: AdapterCase) -> None:
    if not case.request.passes_extra:
        pytest.skip(f"{case.kind} does not forward unknown fields")
    extra = {"x_custom_field": {"nested": [1, "two", None]}, "x_flag": True}
    chat = dataclasses.replace(case.request.request, extra=extra)
    body = orjson.loads(registry.create(case.settings).build_request(chat, case.target).body)
    assert {name: body.get(name) for name in extra} == extra
