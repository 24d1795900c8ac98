"""Data governance end to end: block, redact round trips, local-only, residency, output filter."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from tests.stack import FAST, Stack, stack

ECHO = {**FAST, "echo": True, "itl_ms": 0}
EMAIL, CARD = "ada.lovelace@example.org", "4111 1111 1111 1111"


async def post(s: Stack, model: str, text: str, stream: bool = True) -> tuple[int, Any]:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{s.url}/v1/chat/completions", json=body) as resp:
            raw = await resp.read()
            return resp.status, raw


def streamed_text(raw: bytes) -> tuple[str, list[str]]:
    text, finishes = [], []
    for event in raw.split(b"\n\n"):
        if event.startswith(b"data: {"):
            chunk = orjson.loads(event[6:])
            for choice in chunk.get("choices", []):
                text.append(choice["delta"].get("content") or "")
                if choice["finish_reason"]:
                    finishes.append(choice["finish_reason"])
    return "".join(text), finishes


async def test_block_names_types_never_values_and_contacts_nobody() -> None:
    servers = {"a": {"kind": "openai", "models": {"m": ECHO}}}
    async with stack(servers, governance={"pii": {"card": "block"}}) as s:
        status, raw = await post(s, "m", f"my card is {CARD}")
        assert status == 400
        error = orjson.loads(raw)["error"]
        assert error["code"] == "pii_detected" and "card" in error["message"]
        assert "4111" not in raw.decode()
        assert s.log.records == []


async def test_redacted_upstream_sees_placeholder_client_sees_original() -> None:
    servers = {"a": {"kind": "openai", "models": {"m": ECHO}}}
    async with stack(servers, governance={"pii": {"email": "redact"}}) as s:
        for stream in (True, False):
            status, raw = await post(s, "m", f"write to {EMAIL} today", stream)
            assert status == 200
            if stream:
                text, _ = streamed_text(raw)
            else:
                text = orjson.loads(raw)["choices"][0]["message"]["content"]
            # The simulator echoes exactly what it received: the placeholder, split over chunks.
            assert text == f"write to {EMAIL} today"
            received = s.log.records[-1].last_user_text
            assert received == "write to <EMAIL_1> today" and EMAIL not in received
        metrics = s.gateway.metrics.render().decode()
        assert 'gateway_governance_actions_total{action="redact"} 2.0' in metrics


async def test_route_policy_overrides_global_policy() -> None:
    servers = {"a": {"kind": "openai", "models": {"m": ECHO}}}
    routes = {"raw": {"deployments": ["m"], "governance": {"pii": {"email": "allow"}}}}
    async with stack(servers, routes, governance={"pii": {"email": "redact"}}) as s:
        # Route-level policy overrides the global one: this route sends the value through.
        status, raw = await post(s, "raw", f"hi {EMAIL}")
        assert status == 200 and streamed_text(raw)[0] == f"hi {EMAIL}"
        assert s.log.records[-1].last_user_text == f"hi {EMAIL}"


async def test_local_only_keeps_data_on_premises() -> None:
    servers = {
        "cloud": {"kind": "openai", "models": {"hosted": ECHO}},
        "onprem": {"kind": "ollama", "models": {"llama": ECHO}},
    }
    routes = {"chat": {"strategy": "race", "k": 2, "deployments": ["hosted", "llama"]}}
    deployments = {"llama": {"local": True}}
    async with stack(
        servers, routes, deployments, governance={"pii": {"secret": "local_only"}}
    ) as s:
        status, raw = await post(s, "chat", "key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789")
        assert status == 200
        assert {r.model for r in s.log.records} == {"llama"}, "the hosted model was never contacted"
    async with stack(
        {"cloud": servers["cloud"]}, governance={"pii": {"secret": "local_only"}}
    ) as s:
        status, raw = await post(s, "hosted", "key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789")
        assert status == 400 and orjson.loads(raw)["error"]["code"] == "no_compliant_deployment"
        assert s.log.records == []


async def test_residency_never_contacts_outside_regions() -> None:
    servers = {"a": {"kind": "openai", "models": {"eu1": ECHO, "us1": ECHO}}}
    deployments = {"eu1": {"region": "eu"}, "us1": {"region": "us"}}
    routes = {
        "eu-only": {
            "strategy": "race",
            "k": 2,
            "deployments": ["us1", "eu1"],
            "data_residency": ["eu"],
        },
        "apac-only": {"deployments": ["us1", "eu1"], "data_residency": ["apac"]},
    }
    async with stack(servers, routes, deployments) as s:
        status, _ = await post(s, "eu-only", "hello")
        assert status == 200
        assert [r.model for r in s.log.records] == ["eu1"]
        status, raw = await post(s, "apac-only", "hello")
        assert status == 400 and orjson.loads(raw)["error"]["code"] == "no_compliant_deployment"
        assert len(s.log.records) == 1


async def test_output_filter_stop_ends_with_content_filter() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"m": {**FAST, "text": "the launch code is ZEBRA-42 ok"}}}
    }
    output = {"action": "stop", "patterns": {"launch": "ZEBRA-\\d+"}, "window": 16}
    async with stack(servers, governance={"output": output}) as s:
        status, raw = await post(s, "m", "tell me")
        text, finishes = streamed_text(raw)
        assert status == 200 and "ZEBRA" not in text
        assert finishes == ["content_filter"]
        assert raw.endswith(b"data: [DONE]\n\n")
        metrics = s.gateway.metrics.render().decode()
        assert 'gateway_output_filter_matches_total{match="launch",route="m"} 1.0' in metrics


async def test_output_filter_redacts_split_matches() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"m": {**FAST, "text": "mail bob@corp.example now"}}}
    }
    output = {"action": "redact", "detectors": ["email"], "window": 32}
    async with stack(servers, governance={"output": output}) as s:
        status, raw = await post(s, "m", "x")
        text, finishes = streamed_text(raw)
        assert status == 200 and "bob@corp.example" not in text
        assert text.startswith("mail ") and text.endswith(" now") and finishes == ["stop"]
        metrics = s.gateway.metrics.render().decode()
        assert 'gateway_output_filter_matches_total{match="email",route="m"} 1.0' in metrics


async def test_key_policy_narrows_residency_and_pii() -> None:
    servers = {"a": {"kind": "openai", "models": {"eu1": ECHO, "us1": ECHO}}}
    deployments = {"eu1": {"region": "eu"}, "us1": {"region": "us"}}
    routes = {"chat": {"strategy": "fallback", "deployments": ["us1", "eu1"]}}
    governance = {"keys": {"key-2": {"data_residency": ["eu"], "pii": {"email": "block"}}}}
    async with stack(
        servers, routes, deployments, auth={"keys": ["k-one", "k-two"]}, governance=governance
    ) as s:

        async def ask(key: str, text: str) -> tuple[int, Any]:
            body = {"model": "chat", "messages": [{"role": "user", "content": text}]}
            headers = {"authorization": f"Bearer {key}"}
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{s.url}/v1/chat/completions", json=body, headers=headers
                ) as r:
                    return r.status, r.headers.get("x-gateway-deployment")

        assert await ask("k-one", "hello") == (200, "us1")  # no key policy: config order
        assert await ask("k-two", "hello") == (200, "eu1")  # residency: eu only
        status, _ = await ask("k-two", f"mail {EMAIL}")
        assert status == 400  # this key blocks e-mail addresses
        assert await ask("k-one", f"mail {EMAIL}") == (200, "us1")
