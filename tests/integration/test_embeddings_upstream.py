"""Embeddings over real sockets: the simulators' endpoints, `one_shot_events` with each
adapter (split calls rejoined in order), and the race engine falling back and accounting
an embeddings answer exactly as a chat answer."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import numpy as np
import orjson

from gateway.providers import registry
from gateway.providers.base import ProviderSettings, TargetModel
from gateway.request import EmbedRequest
from gateway.sim.config import parse_sim_config
from gateway.sim.server import SimCluster
from gateway.sim.wire_embed import vector
from gateway.streaming.events import Embeddings, UpstreamError, Usage
from gateway.streaming.plan import AllFailed, Candidate, RacePlan, Winner
from gateway.streaming.race import Race
from gateway.streaming.upstream import UpstreamPool, one_shot_events

EMBED = {"type": "embedding", "dimensions": 16, "ttft_ms": 1}
SERVERS: dict[str, Any] = {
    "oa": {"kind": "openai", "models": {"emb": EMBED, "chat": {"ttft_ms": 1}}},
    "ge": {"kind": "gemini", "models": {"gem": EMBED}},
    "ol": {"kind": "ollama", "models": {"nomic": EMBED}},
    "bad": {"kind": "openai", "models": {"down": {**EMBED, "error_rate_500": 1.0}}},
}


@asynccontextmanager
async def cluster() -> AsyncIterator[SimCluster]:
    config, problems = parse_sim_config({"seed": 1, "servers": SERVERS})
    assert config is not None, problems
    sims = SimCluster(config)
    await sims.start()
    try:
        yield sims
    finally:
        await sims.stop()


def adapter(sims: SimCluster, server: str) -> Any:
    kind = SERVERS[server]["kind"]
    base = sims.base_url(server)
    return registry.create(ProviderSettings(server, kind, base, "sim-key"))


async def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=body, headers=headers or {}) as resp:
            return resp.status, orjson.loads(await resp.read())


async def test_openai_sim_embeddings_are_deterministic_unit_vectors() -> None:
    async with cluster() as sims:
        url = sims.base_url("oa") + "/embeddings"
        auth = {"authorization": "Bearer k"}
        status, body = await post(url, {"model": "emb", "input": ["a", "b", "a"]}, auth)
        assert status == 200
        vectors = [item["embedding"] for item in body["data"]]
        assert vectors[0] == vectors[2] != vectors[1]
        assert vectors[0] == vector("a", 16) and len(vectors[0]) == 16
        assert abs(sum(v * v for v in vectors[1]) - 1.0) < 1e-5
        assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
        status, body = await post(
            url, {"model": "emb", "input": "a", "encoding_format": "base64", "dimensions": 4}, auth
        )
        raw = base64.b64decode(body["data"][0]["embedding"])
        assert np.frombuffer(raw, "<f4").tolist() == vector("a", 4)
        status, body = await post(url, {"model": "chat", "input": "a"}, auth)
        assert status == 400 and "does not support embeddings" in body["error"]["message"]
        status, body = await post(url, {"model": "emb", "input": "a", "dimensions": 17}, auth)
        assert status == 400
        chat_url = sims.base_url("oa") + "/chat/completions"
        chat = {"model": "emb", "messages": [{"role": "user", "content": "hi"}]}
        status, body = await post(chat_url, chat, auth)
        assert status == 400 and "embedding model" in body["error"]["message"]


async def test_each_adapter_embeds_against_its_simulator() -> None:
    texts = ["alpha", "beta", "gamma"]
    async with cluster() as sims:
        # OpenAI and Ollama report usage (the sims count ceil(chars / 4) per input);
        # Gemini reports none: the gateway's estimate (chars // 4, at least 1) is charged.
        for server, model, prompt in (("oa", "emb", 5), ("ge", "gem", 3), ("ol", "nomic", 5)):
            pool = UpstreamPool(server)
            try:
                call = adapter(sims, server).build_embed_call(
                    EmbedRequest("r", texts, dimensions=8), TargetModel(model)
                )
                batches = [b async for b in one_shot_events(pool, adapter(sims, server), call)]
            finally:
                await pool.close()
            (events,) = batches
            embeddings = next(e for e in events if type(e) is Embeddings)
            assert embeddings.vectors == [vector(t, 8) for t in texts], server
            assert next(e for e in events if type(e) is Usage).prompt == prompt, server


async def test_a_split_request_is_several_calls_rejoined_in_order() -> None:
    texts = [f"input {i}" for i in range(7)]
    async with cluster() as sims:
        pool = UpstreamPool("ge")
        gemini = adapter(sims, "ge")
        try:
            call = gemini.build_embed_call(
                EmbedRequest("r", texts), TargetModel("gem", batch_size=2)
            )
            (events,) = [b async for b in one_shot_events(pool, gemini, call)]
        finally:
            await pool.close()
        assert len(sims.log.records) == 4
        assert all(r.outcome == "completed" for r in sims.log.records)
        embeddings = next(e for e in events if type(e) is Embeddings)
        assert embeddings.vectors == [vector(t, 16) for t in texts]


async def test_one_failed_call_is_the_whole_answer() -> None:
    async with cluster() as sims:
        pool = UpstreamPool("bad")
        bad = adapter(sims, "bad")
        try:
            call = bad.build_embed_call(EmbedRequest("r", ["a", "b"]), TargetModel("down"))
            (events,) = [b async for b in one_shot_events(pool, bad, call)]
        finally:
            await pool.close()
        (error,) = events
        assert isinstance(error, UpstreamError) and error.status == 500 and error.retryable


async def test_the_race_falls_back_and_accounts_embeddings_like_chat() -> None:
    async with cluster() as sims:
        pools = {name: UpstreamPool(name) for name in ("bad", "oa")}
        models = {"bad": "down", "oa": "emb"}
        request = EmbedRequest("vectors", ["one two three four", "five"])

        def opener(candidate: Candidate) -> Any:
            provider = adapter(sims, candidate.name)
            call = provider.build_embed_call(request, TargetModel(models[candidate.name]))
            return one_shot_events(pools[candidate.name], provider, call)

        plan = RacePlan(
            "req_1",
            "vectors",
            "fallback",
            [Candidate("bad", price_input=1.0), Candidate("oa", price_input=2.0)],
            k=1,
            prompt_estimate=request.estimated_prompt_tokens(),
        )
        race = Race(plan, opener)
        try:
            outcome = await race.first()
            assert isinstance(outcome, Winner) and outcome.deployment == "oa"
            embeddings = next(e for e in outcome.events if type(e) is Embeddings)
            assert embeddings.vectors == [vector("one two three four", 16), vector("five", 16)]
            assert await race.next_batch() is None
        finally:
            record = await race.aclose()
            for pool in pools.values():
                await pool.close()
        failed, won = record.attempts
        assert (failed.deployment, failed.outcome, failed.error.status) == ("bad", "failed", 500)
        assert (won.deployment, won.outcome, won.input_tokens) == ("oa", "won", 6)
        assert won.cost_usd == 6 * 2.0 / 1e6
        assert record.stream_outcome == "completed"


async def test_every_candidate_failing_is_all_failed() -> None:
    async with cluster() as sims:
        pool = UpstreamPool("bad")
        bad = adapter(sims, "bad")

        def opener(candidate: Candidate) -> Any:
            call = bad.build_embed_call(EmbedRequest("v", ["a"]), TargetModel("down"))
            return one_shot_events(pool, bad, call)

        race = Race(RacePlan("req_2", "v", "fallback", [Candidate("bad")], k=1), opener)
        try:
            outcome = await race.first()
        finally:
            await race.aclose()
            await pool.close()
        assert isinstance(outcome, AllFailed) and outcome.error.status == 500
