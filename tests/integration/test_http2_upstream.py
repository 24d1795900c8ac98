"""Providers configured with `http2: true`, end to end through the gateway against the
simulators' HTTP/2 listener: answers of every kind arrive as over HTTP/1.1 (the official
SDK reads them), requests share one connection, and a race's loser is dropped with a
RST_STREAM, its connection kept for the next request instead of opened anew."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from bench.procs import make_certificate
from gateway.sim.wire_embed import vector
from tests.integration.test_race import BODY, EARLY_TEXT, SLOW_TEXT, post, text_of
from tests.stack import FAST, no_gateway_tasks_left, stack

ROUTES = {"chat": {"strategy": "race", "k": 2, "deployments": ["late", "early"]}}


async def test_openai_and_anthropic_upstreams_over_http2_through_the_sdks() -> None:
    servers = {
        "oa": {"kind": "openai", "http2": True, "models": {"gpt": {**FAST, "text": "over h2"}}},
        "an": {"kind": "anthropic", "http2": True, "models": {"claude": FAST}},
    }
    async with stack(servers) as s:
        client = AsyncOpenAI(base_url=f"{s.url}/v1", api_key="x", max_retries=0)
        for _ in range(3):
            stream = await client.chat.completions.create(
                model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == "over h2"
        whole = await client.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "hi"}]
        )
        assert whole.choices[0].message.content == "over h2"
        messages = AsyncAnthropic(base_url=s.url, api_key="x", max_retries=0)
        answer = await messages.messages.create(
            model="claude", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.content and answer.content[0].type == "text"
        oa, an = s.gateway.upstreams.pools["oa"], s.gateway.upstreams.pools["an"]
        assert (oa.stats.opened, oa.stats.reused) == (1, 3)  # four requests, one connection
        assert an.stats.opened == 1
        await client.close()
        await messages.close()


async def test_a_race_loser_is_reset_and_its_connection_carries_the_next_race() -> None:
    servers = {
        "a": {"kind": "openai", "http2": True, "models": {"late": SLOW_TEXT}},
        "b": {"kind": "openai", "http2": True, "models": {"early": EARLY_TEXT}},
    }
    async with stack(servers, ROUTES) as s:
        for round_ in range(1, 4):
            status, headers, raw = await post(s.url, {**BODY, "model": "chat"})
            assert status == 200 and headers["x-gateway-deployment"] == "early"
            assert text_of(raw) == "early bird wins"
            records = await s.log.wait_for(
                lambda rs, n=round_: (
                    sum(r.model == "late" and r.outcome == "client_disconnect" for r in rs) == n
                )
            )
            assert all(r.tokens_sent == 0 for r in records if r.model == "late")
        late = s.gateway.upstreams.pools["a"]
        # three losers, each reset on the one connection: none was opened again
        assert (late.stats.opened, late.stats.reused) == (1, 2)
        assert late.open_connections() == 1
        assert await no_gateway_tasks_left()


async def test_split_embeddings_calls_share_one_http2_connection() -> None:
    embed = {"type": "embedding", "dimensions": 16, "ttft_ms": 1}
    servers = {"ge": {"kind": "gemini", "http2": True, "models": {"gem": embed}}}
    deployments = {"gem": {"type": "embedding", "batch_size": 2}}
    async with stack(servers, deployments=deployments) as s:
        texts = [f"input {i}" for i in range(7)]
        client = AsyncOpenAI(base_url=f"{s.url}/v1", api_key="x", max_retries=0)
        answer = await client.embeddings.create(model="gem", input=texts)
        assert [d.index for d in answer.data] == list(range(7))
        assert [d.embedding for d in answer.data] == [vector(t, 16) for t in texts]
        assert len(s.log.records) == 4  # four calls of at most two inputs, in parallel
        assert s.gateway.upstreams.pools["ge"].stats.opened == 1
        await client.close()


@pytest.mark.parametrize("http2", [False, True])
async def test_a_tls_provider_trusted_by_its_ca_file(
    http2: bool, certificate: tuple[Path, Path]
) -> None:
    key, cert = certificate
    tls = {"tls_cert": str(cert), "tls_key": str(key), "http2": http2}
    servers = {
        "a": {"kind": "openai", **tls, "models": {"late": SLOW_TEXT}},
        "b": {"kind": "openai", **tls, "models": {"early": EARLY_TEXT}},
    }
    async with stack(servers, ROUTES) as s:
        assert s.sim.base_url("a").startswith("https://")
        for _ in range(2):
            status, _, raw = await post(s.url, {**BODY, "model": "chat"})
            assert status == 200 and text_of(raw) == "early bird wins"
        late = s.gateway.upstreams.pools["a"]
        if http2:  # the loser's stream is reset, its connection carries the next one
            assert (late.stats.opened, late.stats.replaced) == (1, 0)
        else:  # each cut loser's connection is replaced in the background (over https)
            async with asyncio.timeout(5):
                while late.stats.replaced < 2:  # noqa: ASYNC110 (no event for a background dial)
                    await asyncio.sleep(0.005)
            # the second race's attempt took the first replacement (idle, or claimed while
            # it opened) rather than dialing: a TLS handshake each time, off its way
            assert (late.stats.opened, late.stats.replaced) == (3, 2)


async def test_a_ca_file_that_does_not_trust_the_server_fails_the_attempt(
    certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    key, cert = certificate
    other = make_certificate(tmp_path)[1]  # a different self-signed certificate
    tls = {"tls_cert": str(cert), "tls_key": str(key)}
    servers = {"a": {"kind": "openai", **tls, "models": {"m": FAST}}}
    async with stack(servers, provider_options={"a": {"tls_ca_file": str(other)}}) as s:
        status, _, raw = await post(s.url, {**BODY, "model": "m"})
        assert status == 502 and b"upstream connection failed" in raw
