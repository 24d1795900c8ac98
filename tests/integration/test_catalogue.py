"""The catalogue end to end through the simulated providers and the official openai SDK:
a model whose window is too small is never contacted, a request that fits nowhere gets a
400 `context_length_exceeded`, a request with images skips a text-only model, and the
metrics show the skips and the days to each model's shutdown."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import openai
import pytest
import yaml
from openai import AsyncOpenAI

from tests.stack import FAST, Stack, stack

PRIVATE = {
    "models": {
        "acme/small-ctx": {
            "context_window": 600,
            "max_output_tokens": 100,
            "capabilities": {"vision": False},
        },
        "acme/big-ctx": {
            "context_window": 200_000,
            "max_output_tokens": 8000,
            "capabilities": {"vision": True},
            "shutdown_date": "2099-01-01",
        },
        "acme/text-only": {"context_window": 200_000, "capabilities": {"vision": False}},
    }
}


def client(s: Stack) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{s.url}/v1", api_key="unused", max_retries=0)


async def metrics(s: Stack) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{s.url}/metrics") as resp:
        return await resp.text()


@pytest.fixture
def private_file(tmp_path: Path) -> str:
    path = tmp_path / "private.yaml"
    path.write_text(yaml.safe_dump(PRIVATE))
    return str(path)


async def test_context_and_capabilities_decide_before_any_attempt(private_file: str) -> None:
    servers = {
        "oai": {"kind": "openai", "models": {"small-ctx": FAST, "text-only": FAST}},
        "ant": {"kind": "anthropic", "models": {"big-ctx": FAST}},
    }
    routes = {
        "chat": {"strategy": "fallback", "deployments": ["small-ctx", "text-only", "big-ctx"]},
        "small": {"strategy": "fallback", "deployments": ["small-ctx"]},
    }
    # the private entries' provider family is "acme": match them by name on any kind
    deployments = {m: {"catalogue": f"acme/{m}"} for m in ("small-ctx", "text-only", "big-ctx")}
    async with (
        stack(servers, routes, deployments, catalogue={"files": [private_file]}) as s,
        client(s) as c,
    ):
        short = await c.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}]
        )
        assert short.headers["x-gateway-deployment"] == "small-ctx"

        long = [{"role": "user", "content": "word " * 600}]  # about 754 tokens
        resp = await c.chat.completions.with_raw_response.create(model="chat", messages=long)
        assert resp.headers["x-gateway-deployment"] == "text-only"
        assert len(s.records("small-ctx")) == 1  # only the short request reached it

        image = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            }
        ]
        resp = await c.chat.completions.with_raw_response.create(model="chat", messages=image)
        assert resp.headers["x-gateway-deployment"] == "big-ctx"
        assert len(s.records("text-only")) == 1  # the image never went to a text-only model

        with pytest.raises(openai.BadRequestError) as info:
            await c.chat.completions.create(model="small", messages=long)
        assert info.value.status_code == 400
        assert info.value.code == "context_length_exceeded"
        assert info.value.param == "messages"
        assert len(s.records("small-ctx")) == 1  # still no attempt

        text = await metrics(s)
        assert (
            'gateway_candidates_skipped_total{deployment="small-ctx",reason="context_window"} 2.0'
            in text
        )
        assert (
            'gateway_candidates_skipped_total{deployment="text-only",reason="vision"} 1.0' in text
        )
        assert (
            'gateway_candidates_skipped_total{deployment="small-ctx",reason="vision"} 1.0' in text
        )
        assert (
            'gateway_rejected_requests_total{door="chat",reason="context_length_exceeded"} 1.0'
            in text
        )
        assert 'gateway_model_shutdown_days{deployment="big-ctx"}' in text
