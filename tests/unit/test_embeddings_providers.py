"""Embedding adapters: request building, batch splitting and in-order rejoining, parsing."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
import pytest

from gateway.providers import registry
from gateway.providers.base import (
    OneShotCall,
    ProviderSettings,
    TargetModel,
    UnsupportedParams,
    can_embed,
)
from gateway.providers.embed import EmbedPart, batches
from gateway.request import EmbedRequest
from gateway.streaming.events import Embeddings, ResponseMeta, UpstreamError, Usage


def provider(kind: str, base_url: str = "http://up.test/v1", **options: Any) -> Any:
    return registry.create(ProviderSettings("p", kind, base_url, "sk-test-key", options))


def vec(i: int) -> list[float]:
    return [float(i), i / 2, -1.0]


def run(call: OneShotCall, answers: list[bytes]) -> list[Any]:
    """Parse each answer as the opener would, then merge (or return the first error)."""
    parts = [call.parse(i, body) for i, body in enumerate(answers)]
    errors = [p for p in parts if isinstance(p, UpstreamError)]
    return [errors[0]] if errors else call.merge(parts)


def bodies(call: OneShotCall) -> list[dict[str, Any]]:
    return [orjson.loads(r.body) for r in call.requests]


def test_batches_cover_every_position_once_in_order() -> None:
    assert batches(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert batches(4, 4) == [range(0, 4)]
    assert [i for run in batches(1000, 7) for i in run] == list(range(1000))


def test_every_adapter_but_anthropic_embeds() -> None:
    for kind in registry.kinds():
        base = "http://up.test" if kind != "openai" else "http://up.test/v1"
        assert can_embed(provider(kind, base)) is (kind != "anthropic"), kind


# -- OpenAI family -------------------------------------------------------------------


def openai_answer(indexes: list[int], usage: int | None = 5, model: str = "te-3") -> bytes:
    data = [{"object": "embedding", "index": i, "embedding": vec(i)} for i in indexes]
    body: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage, "total_tokens": usage}
    return orjson.dumps(body)


def test_openai_request_is_one_post_to_embeddings_with_floats() -> None:
    req = EmbedRequest("route", ["a", "b"], "base64", 64, "u1", {"input_type": "query"})
    call = provider("openai").build_embed_call(req, TargetModel("text-embedding-3-small"))
    (upstream,) = call.requests
    assert (upstream.method, upstream.url) == ("POST", "http://up.test/v1/embeddings")
    assert upstream.headers["authorization"] == "Bearer sk-test-key"
    assert upstream.headers["accept"] == "application/json"
    assert orjson.loads(upstream.body) == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "float",  # the client's base64 is the gateway's to produce
        "dimensions": 64,
        "user": "u1",
        "input_type": "query",
    }


def test_openai_token_arrays_are_sent_as_they_are() -> None:
    call = provider("vllm", "http://up.test/v1").build_embed_call(
        EmbedRequest("r", [[1, 2], [3]]), TargetModel("bge")
    )
    assert bodies(call)[0]["input"] == [[1, 2], [3]]


def test_openai_split_rejoins_in_input_order_and_sums_usage() -> None:
    req = EmbedRequest("r", ["t0", "t1", "t2", "t3", "t4"])
    call = provider("openai").build_embed_call(req, TargetModel("m", batch_size=2))
    assert [b["input"] for b in bodies(call)] == [["t0", "t1"], ["t2", "t3"], ["t4"]]
    # Each answer lists its items out of order; `index` is within the call.
    events = run(call, [openai_answer([1, 0]), openai_answer([1, 0]), openai_answer([0])])
    assert events == [
        ResponseMeta("te-3"),
        Embeddings([vec(0), vec(1), vec(0), vec(1), vec(0)]),
        Usage(prompt=15),
    ]


def test_openai_batch_size_defaults_to_2048_and_a_quirk_changes_it() -> None:
    req = EmbedRequest("r", [f"t{i}" for i in range(2049)])
    assert [
        len(b["input"]) for b in bodies(provider("openai").build_embed_call(req, TargetModel("m")))
    ] == [2048, 1]
    mistral = provider("mistral", "http://up.test/v1", embed_batch_size=1000)
    assert len(mistral.build_embed_call(req, TargetModel("m")).requests) == 3
    custom = provider("openai_compatible", "http://up.test", embeddings_path="/v2/embed")
    assert (
        custom.build_embed_call(req, TargetModel("m")).requests[0].url == "http://up.test/v2/embed"
    )


def test_openai_quirk_values_are_checked() -> None:
    with pytest.raises(ValueError, match="embed_batch_size"):
        provider("openai", embed_batch_size=0)
    with pytest.raises(ValueError, match="embeddings_path"):
        provider("openai", embeddings_path="embeddings")


def test_openai_usage_missing_is_charged_the_estimate() -> None:
    req = EmbedRequest("r", ["x" * 40, [1, 2, 3]][:1])
    call = provider("openai").build_embed_call(req, TargetModel("m"))
    assert run(call, [openai_answer([0], usage=None)])[-1] == Usage(prompt=10)


def test_openai_base64_answer_is_read_too() -> None:
    values = [0.25, -1.5, 3.0]
    text = base64.b64encode(np.array(values, dtype="<f4").tobytes()).decode()
    body = orjson.dumps({"data": [{"index": 0, "embedding": text}], "usage": {"prompt_tokens": 1}})
    call = provider("openai").build_embed_call(EmbedRequest("r", ["a"]), TargetModel("m"))
    assert run(call, [body])[0] == Embeddings([values])


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b"{}", "no data"),
        (orjson.dumps({"data": [1]}), "non-object item"),
        (orjson.dumps({"data": [{"index": 3, "embedding": [1.0]}]}), "indexes"),
        (orjson.dumps({"data": [{"index": True, "embedding": [1.0]}]}), "indexes"),
        (orjson.dumps({"data": [{"index": 0, "embedding": ["x"]}]}), "not an array of numbers"),
        (orjson.dumps({"data": [{"index": 0, "embedding": []}]}), "not an array of numbers"),
        (orjson.dumps({"data": [{"index": 0, "embedding": [1e39]}]}), "not an array of numbers"),
        (orjson.dumps({"data": [{"index": 0, "embedding": "@@"}]}), "not an array of numbers"),
        (openai_answer([0, 1]), "2 embeddings for 1 inputs"),
    ],
)
def test_openai_broken_answers_are_protocol_errors(answer: bytes, message: str) -> None:
    call = provider("openai").build_embed_call(EmbedRequest("r", ["a"]), TargetModel("m"))
    (error,) = run(call, [answer])
    assert isinstance(error, UpstreamError)
    assert error.type == "upstream_protocol_error" and message in error.message


def test_openai_error_object_in_a_200_is_an_error() -> None:
    call = provider("openai").build_embed_call(EmbedRequest("r", ["a"]), TargetModel("m"))
    body = orjson.dumps({"error": {"message": "overloaded sk-test-key", "type": "server_error"}})
    (error,) = run(call, [body])
    assert isinstance(error, UpstreamError) and error.retryable
    assert "sk-test-key" not in error.message


# -- Gemini --------------------------------------------------------------------------


def gemini_answer(ids: list[int]) -> bytes:
    return orjson.dumps({"embeddings": [{"values": vec(i)} for i in ids]})


def test_gemini_batch_embed_contents_request() -> None:
    gemini = provider("gemini", "https://generativelanguage.googleapis.com")
    req = EmbedRequest("r", ["a", "b"], dimensions=32, user="ignored")
    call = gemini.build_embed_call(req, TargetModel("models/gemini-embedding-001"))
    (upstream,) = call.requests
    assert upstream.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/"
        "gemini-embedding-001:batchEmbedContents"
    )
    assert upstream.headers["x-goog-api-key"] == "sk-test-key"
    assert orjson.loads(upstream.body) == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "outputDimensionality": 32,
                "content": {"parts": [{"text": text}]},
            }
            for text in ("a", "b")
        ]
    }


def test_gemini_splits_by_100_and_charges_estimates() -> None:
    texts = [f"text number {i:03d}" for i in range(250)]  # 15 characters: 3 tokens each
    call = provider("gemini", "http://g.test").build_embed_call(
        EmbedRequest("r", texts), TargetModel("e")
    )
    assert [len(b["requests"]) for b in bodies(call)] == [100, 100, 50]
    sent = [r["content"]["parts"][0]["text"] for b in bodies(call) for r in b["requests"]]
    assert sent == texts
    events = run(
        call,
        [
            gemini_answer(list(range(100))),
            gemini_answer(list(range(100, 200))),
            gemini_answer(list(range(200, 250))),
        ],
    )
    assert events == [Embeddings([vec(i) for i in range(250)]), Usage(prompt=750)]


def test_gemini_refuses_token_arrays_and_unknown_fields() -> None:
    gemini = provider("gemini", "http://g.test")
    with pytest.raises(UnsupportedParams, match="token arrays"):
        gemini.build_embed_call(EmbedRequest("r", [[1, 2]]), TargetModel("e", drop_params=True))
    req = EmbedRequest("r", ["a"], extra={"input_type": "q"})
    with pytest.raises(UnsupportedParams, match="input_type"):
        gemini.build_embed_call(req, TargetModel("e"))
    dropped = gemini.build_embed_call(req, TargetModel("e", drop_params=True))
    assert "input_type" not in bodies(dropped)[0]["requests"][0]


def test_gemini_wrong_count_and_shapes_are_protocol_errors() -> None:
    call = provider("gemini", "http://g.test").build_embed_call(
        EmbedRequest("r", ["a", "b"]), TargetModel("e")
    )
    for answer in (gemini_answer([0]), b"{}", orjson.dumps({"embeddings": [{"values": "x"}, {}]})):
        (error,) = run(call, [answer])
        assert isinstance(error, UpstreamError) and error.type == "upstream_protocol_error"


# -- Ollama --------------------------------------------------------------------------


def ollama_answer(ids: list[int], count: int | None = 4) -> bytes:
    body: dict[str, Any] = {"model": "nomic-embed-text", "embeddings": [vec(i) for i in ids]}
    if count is not None:
        body["prompt_eval_count"] = count
    return orjson.dumps(body)


def test_ollama_api_embed_request() -> None:
    ollama = provider("ollama", "http://127.0.0.1:11434", keep_alive="5m")
    req = EmbedRequest("r", ["a", "b"], dimensions=16, extra={"truncate": False})
    call = ollama.build_embed_call(req, TargetModel("nomic-embed-text"))
    (upstream,) = call.requests
    assert upstream.url == "http://127.0.0.1:11434/api/embed"
    assert orjson.loads(upstream.body) == {
        "model": "nomic-embed-text",
        "truncate": False,
        "dimensions": 16,
        "keep_alive": "5m",
        "input": ["a", "b"],
    }
    api_base = provider("ollama", "http://127.0.0.1:11434/api")
    assert (
        api_base.build_embed_call(req, TargetModel("n"))
        .requests[0]
        .url.endswith(":11434/api/embed")
    )


def test_ollama_splits_by_256_and_reads_prompt_eval_count() -> None:
    texts = [f"t{i}" for i in range(300)]
    call = provider("ollama", "http://o.test").build_embed_call(
        EmbedRequest("r", texts), TargetModel("n")
    )
    assert [len(b["input"]) for b in bodies(call)] == [256, 44]
    events = run(
        call, [ollama_answer(list(range(256)), 300), ollama_answer(list(range(256, 300)), None)]
    )
    assert events == [
        ResponseMeta("nomic-embed-text"),
        Embeddings([vec(i) for i in range(300)]),
        Usage(prompt=300 + 44),  # the second answer had no count: 44 one-token inputs
    ]


def test_ollama_refuses_token_arrays_and_unknown_fields() -> None:
    ollama = provider("ollama", "http://o.test")
    with pytest.raises(UnsupportedParams, match="token arrays"):
        ollama.build_embed_call(EmbedRequest("r", [[1]]), TargetModel("n"))
    with pytest.raises(UnsupportedParams, match="input_type"):
        ollama.build_embed_call(
            EmbedRequest("r", ["a"], extra={"input_type": "q"}), TargetModel("n")
        )


def test_a_deployment_batch_size_overrides_every_adapter() -> None:
    req = EmbedRequest("r", ["a", "b", "c"])
    for kind, base in (("openai", "http://o/v1"), ("gemini", "http://g"), ("ollama", "http://l")):
        call = provider(kind, base).build_embed_call(req, TargetModel("m", batch_size=1))
        assert len(call.requests) == 3, kind


def test_merge_of_parts_without_model_has_no_meta() -> None:
    call = provider("gemini", "http://g").build_embed_call(
        EmbedRequest("r", ["a"]), TargetModel("e")
    )
    assert call.merge([EmbedPart([[1.0]], 2)]) == [Embeddings([[1.0]]), Usage(prompt=2)]
