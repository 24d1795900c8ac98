"""Simulated embeddings: config, deterministic vectors, and each wire's parsing."""

from __future__ import annotations

import math

import orjson

from gateway.sim.config import parse_sim_config
from gateway.sim.wire_embed import (
    EmbedWireRequest,
    parse_gemini,
    parse_ollama,
    parse_openai,
    render_ollama,
    vector,
)


def test_models_are_chat_by_default_and_embedding_when_marked() -> None:
    config, problems = parse_sim_config(
        {"servers": {"s": {"kind": "openai", "models": {"c": {}, "e": {"type": "embedding"}}}}}
    )
    assert config is not None, problems
    models = config.servers["s"].models
    assert (models["c"].type, models["e"].type, models["e"].dimensions) == (
        "chat",
        "embedding",
        256,
    )


def test_bad_type_and_dimensions_are_reported_with_their_path() -> None:
    _, problems = parse_sim_config(
        {"servers": {"s": {"kind": "ollama", "models": {"e": {"type": "vec", "dimensions": 0}}}}}
    )
    assert problems == [
        "sim.servers.s.models.e.type: must be one of: chat, embedding",
        "sim.servers.s.models.e.dimensions: must be an integer from 1 to 16384",
    ]


def test_vectors_depend_on_the_input_only_and_are_unit_length() -> None:
    assert vector("hello", 32) == vector("hello", 32) != vector("hello!", 32)
    assert len(vector("x", 7)) == 7
    assert math.isclose(sum(v * v for v in vector("x", 300)), 1.0, rel_tol=1e-5)


def test_openai_wire_takes_every_input_shape() -> None:
    one = parse_openai(orjson.dumps({"model": "m", "input": "hi"}))
    assert isinstance(one, EmbedWireRequest) and one.keys == ("hi",)
    tokens = parse_openai(orjson.dumps({"model": "m", "input": [5, 6]}))
    assert isinstance(tokens, EmbedWireRequest) and tokens.tokens == (2,)
    many = parse_openai(orjson.dumps({"model": "m", "input": [[1], [2, 3]], "dimensions": 4}))
    assert isinstance(many, EmbedWireRequest) and many.tokens == (1, 2) and many.dimensions == 4
    for bad in ({"model": "m", "input": ""}, {"model": "m", "input": []}, {"input": "x"}):
        assert isinstance(parse_openai(orjson.dumps(bad)), tuple)


def test_gemini_wire_checks_the_batch_against_the_url() -> None:
    item = {"model": "models/g", "content": {"parts": [{"text": "a"}]}}
    ok = parse_gemini(orjson.dumps({"requests": [item]}), "g:batchEmbedContents")
    assert isinstance(ok, EmbedWireRequest) and ok.model == "g" and ok.keys == ("a",)
    wrong = parse_gemini(orjson.dumps({"requests": [item]}), "h:batchEmbedContents")
    assert isinstance(wrong, tuple) and "match" in wrong[0]
    assert isinstance(parse_gemini(orjson.dumps({"requests": [item] * 101}), "g:x"), tuple)


def test_ollama_wire_and_its_usage() -> None:
    req = parse_ollama(orjson.dumps({"model": "n", "input": ["abcd", "abcdefgh"]}))
    assert isinstance(req, EmbedWireRequest)
    body = orjson.loads(render_ollama(req, [[1.0], [2.0]], "n"))
    assert body["embeddings"] == [[1.0], [2.0]] and body["prompt_eval_count"] == 3
    assert isinstance(parse_ollama(orjson.dumps({"model": "n", "input": [1]})), tuple)


def test_the_demo_has_an_embeddings_route_over_every_embedding_kind() -> None:
    from gateway.demo import banner, demo_config
    from gateway.sim.server import default_demo_sim_config

    sim = default_demo_sim_config()
    config = demo_config(sim, {name: "http://127.0.0.1:1" for name in sim.servers}, 0)
    route = config.routes["embeddings"]
    assert route.strategy == "fallback"
    kinds = {config.providers[config.deployments[d].provider].kind for d in route.deployments}
    assert kinds == {"openai", "gemini", "ollama"}
    assert all(config.deployments[d].type == "embedding" for d in route.deployments)
    assert "embedding" not in {
        config.deployments[d].type for d in config.routes["chat"].deployments
    }
    assert "/v1/embeddings" in banner("http://127.0.0.1:8080")
