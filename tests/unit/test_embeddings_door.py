"""The /v1/embeddings door: parsing (shapes, strictness, limits) and the answer's encoding."""

from __future__ import annotations

import base64
import struct
from typing import Any

import numpy as np
import orjson
import pytest
from openai.types import CreateEmbeddingResponse

from gateway.config.model import LimitsConfig
from gateway.doors.embeddings import (
    MAX_DIMENSIONS,
    EmbeddingsAssembler,
    encode_vector,
    error_body,
    parse_embeddings_request,
)
from gateway.rejection import Rejected
from gateway.request import EmbedRequest
from gateway.streaming.events import Embeddings, ResponseMeta, UpstreamError, Usage, is_token

LIMITS = LimitsConfig()


def parse(body: Any, limits: LimitsConfig = LIMITS) -> EmbedRequest:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_embeddings_request(raw, {}, limits)


def test_a_single_string_is_a_list_of_one() -> None:
    req = parse({"model": "emb", "input": "hello"})
    assert req.inputs == ["hello"] and not req.tokenized
    assert req.encoding_format == "float" and req.dimensions is None and req.user is None


def test_a_list_of_strings_keeps_its_order() -> None:
    req = parse({"model": "emb", "input": ["b", "a", "c"], "user": "u1", "dimensions": 8})
    assert req.inputs == ["b", "a", "c"]
    assert (req.user, req.dimensions) == ("u1", 8)


def test_a_token_array_is_one_input() -> None:
    req = parse({"model": "emb", "input": [1, 2, 3]})
    assert req.inputs == [[1, 2, 3]] and req.tokenized
    assert req.estimated_prompt_tokens() == 3


def test_a_list_of_token_arrays() -> None:
    req = parse({"model": "emb", "input": [[1, 2], [3]], "encoding_format": "base64"})
    assert req.inputs == [[1, 2], [3]] and req.tokenized
    assert req.encoding_format == "base64"


def test_unknown_fields_are_kept_for_openai_family_upstreams() -> None:
    req = parse({"model": "emb", "input": "x", "input_type": "query", "encoding_format": None})
    assert req.extra == {"input_type": "query"}
    assert req.encoding_format == "float"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"", "body"),
        (b"{", "body"),
        (b"[]", "body"),
        ({"input": "x"}, "model"),
        ({"model": "", "input": "x"}, "model"),
        ({"model": "m" * 257, "input": "x"}, "model"),
        ({"model": "emb"}, "input"),
        ({"model": "emb", "input": None}, "input"),
        ({"model": "emb", "input": ""}, "input"),
        ({"model": "emb", "input": []}, "input"),
        ({"model": "emb", "input": 5}, "input"),
        ({"model": "emb", "input": {"text": "x"}}, "input"),
        ({"model": "emb", "input": ["a", ""]}, "input[1]"),
        ({"model": "emb", "input": ["a", 1]}, "input[1]"),
        ({"model": "emb", "input": [1, "a"]}, "input[1]"),
        ({"model": "emb", "input": [1, -1]}, "input[1]"),
        ({"model": "emb", "input": [1, 2**31]}, "input[1]"),
        ({"model": "emb", "input": [1, 1.5]}, "input[1]"),
        ({"model": "emb", "input": [True]}, "input[0]"),
        ({"model": "emb", "input": [[1], []]}, "input[1]"),
        ({"model": "emb", "input": [[1], "a"]}, "input[1]"),
        ({"model": "emb", "input": [[1], [2, True]]}, "input[1][1]"),
        ({"model": "emb", "input": [None]}, "input[0]"),
        ({"model": "emb", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "emb", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "emb", "input": "x", "dimensions": True}, "dimensions"),
        ({"model": "emb", "input": "x", "dimensions": "8"}, "dimensions"),
        ({"model": "emb", "input": "x", "dimensions": 8.0}, "dimensions"),
        ({"model": "emb", "input": "x", "dimensions": MAX_DIMENSIONS + 1}, "dimensions"),
        ({"model": "emb", "input": "x", "user": 5}, "user"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(body: Any, param: str) -> None:
    with pytest.raises(Rejected) as info:
        parse(body)
    assert info.value.status == 400
    assert info.value.type == "invalid_request_error"
    assert info.value.param == param
    assert info.value.message


def test_too_many_inputs_are_refused_but_a_long_token_array_is_one_input() -> None:
    limits = LimitsConfig(max_embedding_inputs=3)
    with pytest.raises(Rejected) as info:
        parse({"model": "emb", "input": ["a", "b", "c", "d"]}, limits)
    assert info.value.code == "array_above_max_length" and info.value.param == "input"
    with pytest.raises(Rejected):
        parse({"model": "emb", "input": [[1], [2], [3], [4]]}, limits)
    assert parse({"model": "emb", "input": [1, 2, 3, 4, 5]}, limits).inputs == [[1, 2, 3, 4, 5]]


def test_an_extra_field_nested_too_deep_is_refused() -> None:
    deep: Any = 1
    for _ in range(80):
        deep = [deep]
    with pytest.raises(Rejected) as info:
        parse({"model": "emb", "input": "x", "extra": deep})
    assert info.value.code == "json_too_deep" and info.value.param == "extra"


def test_embeddings_count_as_the_answers_token() -> None:
    assert is_token(Embeddings([[0.5]]))
    assert not is_token(Embeddings([]))


VECTORS = [[0.1, -0.2, 0.3], [1.0e-8, 3.4e38, -0.0]]


def assembled(encoding: str) -> dict[str, Any]:
    assembler = EmbeddingsAssembler("emb", encoding)  # type: ignore[arg-type]
    assembler.add([ResponseMeta("text-embedding-3-small"), Embeddings(VECTORS), Usage(prompt=7)])
    assert assembler.error is None
    return assembler.build()


def test_float_answer_is_the_openai_list_object() -> None:
    body = assembled("float")
    assert body == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": VECTORS[0]},
            {"object": "embedding", "index": 1, "embedding": VECTORS[1]},
        ],
        "model": "emb",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    parsed = CreateEmbeddingResponse.model_validate(orjson.loads(orjson.dumps(body)))
    assert parsed.data[1].embedding == VECTORS[1]


def test_base64_is_little_endian_float32_as_openai_sends_it() -> None:
    body = assembled("base64")
    for item, vector in zip(body["data"], VECTORS, strict=True):
        text = item["embedding"]
        assert text == base64.b64encode(np.array(vector, dtype="<f4").tobytes()).decode()
        assert text == base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        # What the openai SDK does with a base64 answer it asked for by default:
        decoded = np.frombuffer(base64.b64decode(text), dtype="float32").tolist()
        assert decoded == np.array(vector, dtype=np.float32).tolist()
    CreateEmbeddingResponse.model_validate({**body, "data": []})


def test_encode_vector_of_float32_values_round_trips_exactly() -> None:
    values = np.random.default_rng(3).standard_normal(64).astype(np.float32).tolist()
    assert np.frombuffer(base64.b64decode(encode_vector(values)), "<f4").tolist() == values


def test_an_upstream_error_is_kept_for_the_handler() -> None:
    assembler = EmbeddingsAssembler("emb")
    error = UpstreamError(503, "overloaded", "busy", True)
    assembler.add([error])
    assert assembler.error is error


def test_error_body_is_the_openai_envelope() -> None:
    assert error_body(400, "bad", "invalid_request_error", None, "input") == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": "input", "code": None}
    }
