"""Embeddings, fuzzed end to end without sockets: client bodies -> the door's parser ->
every embedding adapter's calls; upstream answers -> each adapter's parser -> the door's
JSON answer.

Contract: a body is either a 400 Rejected naming a param, or every adapter builds its
calls (or refuses with UnsupportedParams, a 400 too); an upstream answer is either a part
with one finite float32 vector per input or an UpstreamError; whatever is accepted
serializes to an answer the official SDK's types accept. No other exception.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from openai.types import CreateEmbeddingResponse

from gateway.config.model import LimitsConfig
from gateway.doors.embeddings import EmbeddingsAssembler, parse_embeddings_request
from gateway.providers.base import TargetModel, UnsupportedParams, can_embed
from gateway.providers.embed import EmbedPart
from gateway.rejection import Rejected
from gateway.request import EmbedRequest
from gateway.streaming.events import Embeddings, UpstreamError, Usage
from tests.fuzz.invariants import API_KEY, KINDS, provider
from tests.fuzz.strategies import dumps, json_values, mutated

LIMITS = LimitsConfig(max_json_depth=16, max_embedding_inputs=8)
EMBED_KINDS = tuple(kind for kind in KINDS if can_embed(provider(kind)))
TEMPLATES: list[Any] = [
    {"model": "m", "input": "hello", "encoding_format": "base64", "dimensions": 8},
    {"model": "m", "input": ["a", "b", "c"], "user": "u", "encoding_format": "float"},
    {"model": "m", "input": [1, 2, 3]},
    {"model": "m", "input": [[1, 2], [3]], "dimensions": 2, "input_type": "query"},
]
bodies = st.one_of(
    st.sampled_from(TEMPLATES).flatmap(lambda t: mutated(t, 4)).map(dumps),
    st.sampled_from(TEMPLATES).flatmap(lambda t: mutated(t, 12)).map(dumps),
    json_values.map(dumps),
    st.binary(max_size=80),
)
ANSWERS: dict[str, list[Any]] = {
    "openai": [
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
            "model": "te",
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        },
        {"data": [{"index": 0, "embedding": "AAAAPwAAgL4="}], "usage": {"prompt_tokens": 1}},
        {"error": {"message": f"bad key {API_KEY}", "type": "invalid_request_error"}},
    ],
    "gemini": [{"embeddings": [{"values": [0.5, -0.25]}]}],
    "ollama": [{"model": "n", "embeddings": [[0.5, -0.25]], "prompt_eval_count": 3}],
}


def answers_for(kind: str) -> st.SearchStrategy[bytes]:
    family = kind if kind in ANSWERS else "openai"
    return st.one_of(
        st.sampled_from(ANSWERS[family]).flatmap(lambda t: mutated(t, 5)).map(dumps),
        json_values.map(dumps),
        st.binary(max_size=40),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=bodies)
def test_bodies_are_refused_cleanly_or_build_for_every_adapter(raw: bytes) -> None:
    try:
        request = parse_embeddings_request(raw, {}, LIMITS)
    except Rejected as error:
        assert error.status == 400 and error.param and error.message
        event(f"rejected: {error.param.split('[')[0]}")
        return
    event("accepted")
    assert request.inputs and len(request.inputs) <= LIMITS.max_embedding_inputs
    for kind in EMBED_KINDS:
        for drop in (False, True):
            target = TargetModel("upstream-model", drop_params=drop, batch_size=2)
            try:
                call = provider(kind).build_embed_call(request, target)
            except UnsupportedParams as exc:
                assert exc.params
                continue
            sent = 0
            for upstream in call.requests:
                body = orjson.loads(upstream.body)
                sent += len(body.get("input") or body.get("requests") or [])
                if API_KEY.encode() not in raw:
                    assert API_KEY.encode() not in upstream.body
            assert sent == len(request.inputs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), kind=st.sampled_from(EMBED_KINDS))
def test_upstream_answers_are_parts_or_errors(data: st.DataObject, kind: str) -> None:
    answer = data.draw(answers_for(kind))
    call = provider(kind).build_embed_call(EmbedRequest("m", ["x"]), TargetModel("e"))
    part = call.parse(0, answer)
    if isinstance(part, UpstreamError):
        event(f"{kind}: error {part.type}")
        assert API_KEY not in part.message
        return
    assert isinstance(part, EmbedPart) and len(part.vectors) == 1
    event(f"{kind}: part")
    events = call.merge([part])
    assert any(type(e) is Usage for e in events)
    vectors = next(e for e in events if type(e) is Embeddings).vectors
    assert np.isfinite(np.array(vectors[0], dtype=np.float32)).all()
    for encoding in ("float", "base64"):
        assembler = EmbeddingsAssembler("route", encoding)  # type: ignore[arg-type]
        assembler.add(events)
        body = orjson.loads(orjson.dumps(assembler.build()))
        parsed = CreateEmbeddingResponse.model_validate(
            {**body, "data": []} if encoding == "base64" else body
        )
        assert parsed.usage.prompt_tokens >= 0
        if encoding == "base64":
            raw = base64.b64decode(body["data"][0]["embedding"])
            assert len(raw) == 4 * len(vectors[0])
