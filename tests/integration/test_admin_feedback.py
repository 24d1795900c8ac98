"""Feedback, admin views, per-key budgets and limits, model version noticing."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.gateways import inside_one_minute
from tests.stack import FAST, Stack, stack

SERVERS = {"a": {"kind": "openai", "models": {"m": FAST}}}
MSG = [{"role": "user", "content": "hi"}]


async def call(
    s: Stack, method: str, path: str, body: Any = None, key: str | None = None
) -> tuple[int, dict[str, str], Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"{s.url}{path}", json=body, headers=headers) as resp:
            data = (
                await resp.json(content_type=None)
                if resp.content_type == "application/json"
                else await resp.text()
            )
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, data


async def test_feedback_is_credited_to_the_serving_deployment() -> None:
    async with stack(SERVERS) as s:
        status, headers, _ = await call(
            s, "POST", "/v1/chat/completions", {"model": "m", "messages": MSG}
        )
        assert status == 200
        rid = headers["x-request-id"]
        status, _, body = await call(s, "POST", "/v1/feedback", {"request_id": rid, "rating": 1})
        assert status == 200 and body["deployment"] == "m"
        assert s.gateway.state.feedback.ratings()["m"][0] > 0
        status, _, body = await call(
            s, "POST", "/v1/feedback", {"request_id": "req_nope", "rating": 1}
        )
        assert status == 404 and body["error"]["param"] == "request_id"
        for bad in (2, -1.5, "good", None, True):
            status, _, body = await call(
                s, "POST", "/v1/feedback", {"request_id": rid, "rating": bad}
            )
            assert status == 400 and body["error"]["param"] == "rating"


async def test_admin_requires_the_admin_key_and_hides_secrets() -> None:
    async with stack(SERVERS) as s:
        status, _, body = await call(s, "GET", "/admin/deployments")
        assert status == 403
    async with stack(SERVERS, admin={"key": "admin-secret"}) as s:
        assert (await call(s, "GET", "/admin/deployments"))[0] == 401
        assert (await call(s, "GET", "/admin/deployments", key="wrong"))[0] == 401
        await call(s, "POST", "/v1/chat/completions", {"model": "m", "messages": MSG})
        status, _, body = await call(s, "GET", "/admin/deployments", key="admin-secret")
        assert status == 200
        item = body["deployments"]["m"]
        assert item["state"] == "closed" and item["model_version"] == "m"
        assert "sim-key" not in str(body) and "admin-secret" not in str(body)
        status, _, body = await call(
            s, "GET", "/admin/profiles?deployment=m&region=eu", key="admin-secret"
        )
        assert status == 200
        rows = body["deployments"]["m"]["eu"]
        fields = {"p50_ms", "p90_ms", "p99_ms", "level", "samples", "borrowed", "own_samples"}
        assert len(rows) == 24 and fields <= set(rows[0])
        assert not any(row["borrowed"] for row in rows)  # one sample: the prior answers
        status, _, _ = await call(s, "GET", "/admin/profiles?deployment=zz", key="admin-secret")
        assert status == 404


async def test_key_daily_budget_returns_429_once_spent() -> None:
    deployments = {"m": {"price": {"input": 1_000_000, "output": 1_000_000}}}  # $1 per token
    async with stack(SERVERS, None, deployments, routing={"key_daily_budget_usd": 1.0}) as s:
        status, _, _ = await call(
            s, "POST", "/v1/chat/completions", {"model": "m", "messages": MSG}
        )
        assert status == 200
        status, headers, body = await call(
            s, "POST", "/v1/chat/completions", {"model": "m", "messages": MSG}
        )
        assert status == 429 and body["error"]["code"] == "budget_exceeded"
        assert headers["x-should-retry"] == "false"


async def test_key_rate_limit_with_headers() -> None:
    async with stack(SERVERS, auth={"keys": ["k1", "k2"]}, routing={"key_rpm": 2}) as s:
        await inside_one_minute(5)  # the counts below are of one window
        body = {"model": "m", "messages": MSG}
        for _ in range(2):
            assert (await call(s, "POST", "/v1/chat/completions", body, key="k1"))[0] == 200
        status, headers, err = await call(s, "POST", "/v1/chat/completions", body, key="k1")
        assert status == 429 and err["error"]["code"] == "rate_limit_exceeded"
        assert headers["x-ratelimit-remaining-requests"] == "0" and "retry-after" in headers
        assert (await call(s, "POST", "/v1/chat/completions", body, key="k2"))[0] == 200


async def test_model_version_change_is_noticed() -> None:
    async with stack(SERVERS) as s:
        body = {"model": "m", "messages": MSG, "stream": True}
        await call(s, "POST", "/v1/chat/completions", body)
        assert s.gateway.versions["m"] == "m"
        s.sim.configure("a", "m", model_version="m-2026-11-25")
        await call(s, "POST", "/v1/chat/completions", body)
        assert s.gateway.versions["m"] == "m-2026-11-25"
        _, _, metrics = await call(s, "GET", "/metrics")
        assert 'gateway_model_version_changes_total{deployment="m"} 1.0' in metrics
        assert 'gateway_model_version_info{deployment="m",version="m-2026-11-25"} 1.0' in metrics
        assert 'gateway_deployment_health_score{deployment="m"}' in metrics
        assert "gateway_state_degraded 0.0" in metrics
