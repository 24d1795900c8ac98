"""An unknown region header is counted and served from the default region, or refused."""

from __future__ import annotations

import aiohttp
import orjson
import structlog

from tests.stack import FAST, stack

SERVERS = {"a": {"kind": "openai", "models": {"m": FAST}}}
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def test_unknown_region_is_counted_and_logged_then_served_from_the_default() -> None:
    async with stack(SERVERS) as s, aiohttp.ClientSession() as http:
        with structlog.testing.capture_logs() as logs:
            headers = {"x-gateway-region": "mars"}
            async with http.post(f"{s.url}/v1/chat/completions", json=BODY, headers=headers) as r:
                assert r.status == 200
            async with http.post(f"{s.url}/v1/chat/completions", json=BODY) as r:
                assert r.status == 200
        lines = [e for e in logs if e.get("event") == "request"]
        assert [(e["region"], e["region_unknown"]) for e in lines] == [("eu", "mars"), ("eu", None)]
        metrics = s.gateway.metrics.render().decode()
        assert 'gateway_unknown_region_requests_total{door="chat"} 1.0' in metrics


async def test_unknown_region_can_be_refused() -> None:
    latency = {"unknown_region": "refuse"}
    async with stack(SERVERS, latency=latency) as s, aiohttp.ClientSession() as http:
        headers = {"x-gateway-region": "Mars"}
        async with http.post(f"{s.url}/v1/chat/completions", json=BODY, headers=headers) as r:
            assert r.status == 400
            error = orjson.loads(await r.read())["error"]
        assert error["code"] == "unknown_region" and error["param"] == "x-gateway-region"
        assert "'mars'" in error["message"] and "eu, us" in error.get("message", "").replace(
            "apac, ", ""
        )
        headers = {"x-gateway-region": "US"}  # a known region, any case
        async with http.post(f"{s.url}/v1/chat/completions", json=BODY, headers=headers) as r:
            assert r.status == 200
        assert s.log.records and len(s.log.records) == 1
