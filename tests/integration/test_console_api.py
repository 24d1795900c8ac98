"""The console's admin endpoints over HTTP, fed by real requests through simulated
providers: /admin/live, /admin/recent, /admin/costs, /admin/upstreams, and GET /ui."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from tests.stack import Stack, stack

ADMIN = "admin-secret"
SERVERS = {
    "sim": {
        "kind": "openai",
        "models": {
            "fast": {"ttft_ms": 5, "itl_ms": 0, "tokens": 5, "model_version": "fast-0601"},
            "slow": {"ttft_ms": 400, "itl_ms": 0, "tokens": 5},
            "broken": {"ttft_ms": 5, "tokens": 5, "error_rate_500": 1.0},
        },
    }
}
PRICE = {"price": {"input": 1.0, "output": 2.0}}
DEPLOYMENTS = {
    "fast": {**PRICE, "rpm": 100, "context_window": 128000, "shutdown_date": "2031-01-31"},
    "slow": PRICE,
    "broken": PRICE,
}
ROUTES = {
    "chat": {"strategy": "race", "k": 2, "deployments": ["fast", "slow"]},
    "doomed": {"strategy": "fallback", "deployments": ["broken"]},
}
PROMPT = "a prompt nobody else may read"


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}]}


async def call(s: Stack, path: str, key: str | None = ADMIN, body: Any = None) -> Any:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    method = "POST" if body is not None else "GET"
    async with aiohttp.ClientSession() as http:
        async with http.request(method, s.url + path, json=body, headers=headers) as resp:
            data = await resp.read()
            return resp.status, resp.headers, data


async def admin(s: Stack, path: str) -> Any:
    status, _, data = await call(s, path)
    assert status == 200, data
    return orjson.loads(data)


@pytest.fixture
async def loaded() -> Any:
    async with stack(
        SERVERS, ROUTES, DEPLOYMENTS, admin={"key": ADMIN}, auth={"keys": ["k-user"]}
    ) as s:
        for _ in range(3):
            assert (await call(s, "/v1/chat/completions", "k-user", chat("chat")))[0] == 200
        assert (await call(s, "/v1/chat/completions", "k-user", chat("doomed")))[0] >= 500
        assert (await call(s, "/v1/chat/completions", "wrong", chat("chat")))[0] == 401
        yield s


@pytest.mark.parametrize(
    "path", ["/admin/live", "/admin/recent", "/admin/costs", "/admin/upstreams"]
)
async def test_console_endpoints_need_the_admin_key(path: str) -> None:
    async with stack(SERVERS, ROUTES, DEPLOYMENTS) as s:
        status, _, body = await call(s, path)
        assert status == 403 and b"admin_disabled" in body
    async with stack(SERVERS, ROUTES, DEPLOYMENTS, admin={"key": ADMIN}) as s:
        for key in (None, "wrong", "k-user"):
            status, _, body = await call(s, path, key)
            assert status == 401 and b"invalid_api_key" in body


async def test_live_reports_the_requests_just_made(loaded: Stack) -> None:
    live = await admin(loaded, "/admin/live?window=60")
    totals = live["totals"]
    assert totals["requests"] == 5
    assert totals["errors"] == 1 and totals["rejected"] == 1
    assert sum(s["requests"] for s in live["series"]) == 5 and len(live["series"]) == 60
    assert live["wins"] == {"fast": {"wins": 3, "share": 1.0}}
    chat_route = live["routes"]["chat"]
    assert chat_route["requests"] == 3 and chat_route["ttft_samples"] == 3
    # the requests' TTFTs as recorded (each its winner's, plus the gateway's own time),
    # nearest rank of 3 samples; not a timing bound
    chat = [
        r
        for r in (await admin(loaded, "/admin/recent?limit=10"))["records"]
        if r["route"] == "chat"
    ]
    assert all(r["ttft_ms"] >= _winner_ttft(r) > 0 for r in chat)
    ttfts = sorted(r["ttft_ms"] for r in chat)
    assert (chat_route["ttft_p50_ms"], chat_route["ttft_p95_ms"]) == (ttfts[1], ttfts[2])
    assert totals["wasted_usd"] > 0  # "slow" lost three races and was cancelled


def _winner_ttft(record: dict[str, Any]) -> float:
    (won,) = [a for a in record["attempts"] if a["outcome"] == "won"]
    return float(won["ttft_ms"])


async def test_recent_lists_records_without_prompt_text(loaded: Stack) -> None:
    status, _, raw = await call(loaded, "/admin/recent?limit=10")
    assert status == 200 and PROMPT.encode() not in raw
    recent = await admin(loaded, "/admin/recent?limit=10")
    records = recent["records"]
    assert [r["outcome"] for r in records] == [
        "rejected",
        "no_winner",
        "completed",
        "completed",
        "completed",
    ]
    assert records[0]["status"] == 401 and records[0]["reason"] == "invalid_api_key"
    doomed = records[1]
    assert doomed["route"] == "doomed" and doomed["winner"] is None
    assert [(a["deployment"], a["outcome"]) for a in doomed["attempts"]] == [("broken", "failed")]
    assert doomed["attempts"][0]["error"]["status"] == 500
    won = records[2]
    assert won["winner"] == "fast" and won["model_version"] == "fast-0601"
    outcomes = {a["deployment"]: a["outcome"] for a in won["attempts"]}
    assert outcomes == {"fast": "won", "slow": "cancelled"}
    assert won["output_tokens"] == 5 and won["cost_usd"] > 0
    assert len((await admin(loaded, "/admin/recent?limit=2"))["records"]) == 2


@pytest.mark.parametrize(
    "query", ["/admin/recent?limit=0", "/admin/recent?limit=x", "/admin/live?window=301"]
)
async def test_out_of_range_queries_are_400(loaded: Stack, query: str) -> None:
    status, _, body = await call(loaded, query)
    assert status == 400 and b'"param"' in body


async def test_costs_split_winners_and_losers_per_key_and_deployment(loaded: Stack) -> None:
    costs = await admin(loaded, "/admin/costs")
    assert set(costs["deployments"]) == {"fast", "slow", "broken"}
    fast, slow = costs["deployments"]["fast"]["day"], costs["deployments"]["slow"]["day"]
    assert fast["usd"] > 0 and fast["losers_share"] == 0.0
    assert slow["usd"] > 0 and slow["losers_share"] == 1.0
    [spent] = costs["keys"].values()  # the one key that spent (the refused call had no race)
    key = spent["month"]
    assert key["usd"] == pytest.approx(
        fast["usd"] + slow["usd"] + costs["deployments"]["broken"]["day"]["usd"], abs=1e-7
    )
    assert key["losers_usd"] == pytest.approx(
        slow["usd"] + costs["deployments"]["broken"]["day"]["usd"], abs=1e-7
    )
    assert costs["day"].startswith(costs["month"])


async def test_upstreams_show_rate_limit_use_and_pools(loaded: Stack) -> None:
    up = await admin(loaded, "/admin/upstreams")
    fast = up["deployments"]["fast"]
    assert fast["rate_limit"]["rpm"] == 100
    assert fast["rate_limit"]["used_requests"] == 3  # one attempt per race of "chat"
    assert up["deployments"]["slow"]["rate_limit"] is None
    assert up["prewarm"] is False and fast["prewarm_target"] == 0
    assert fast["provider"] == "sim" and fast["pool_open_connections"] >= 0
    assert fast["catalogue"]["context_window"] == 128000
    assert fast["catalogue"]["shutdown_date"] == "2031-01-31"
    assert "context_window" not in up["deployments"]["slow"]["catalogue"]  # unknown: absent


async def test_ui_serves_the_console_with_a_strict_policy() -> None:
    async with stack(SERVERS, ROUTES, DEPLOYMENTS) as s:
        status, _, body = await call(s, "/ui", None)
        assert status == 403 and b"admin.key" in body  # no admin API, no console
    async with stack(SERVERS, ROUTES, DEPLOYMENTS, admin={"key": ADMIN}) as s:
        status, headers, body = await call(s, "/ui", None)  # the page holds no data
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b'id="login-form"' in body and b'method="post"' in body
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "form-action 'none'" in csp
        for name, kind in [("console.js", "text/javascript"), ("console.css", "text/css")]:
            status, headers, body = await call(s, f"/ui/assets/{name}", None)
            assert status == 200 and headers["content-type"].startswith(kind) and body
        status, _, _ = await call(s, "/ui/assets/..%2Fadmin.py", None)
        assert status == 404
        async with aiohttp.ClientSession() as http:
            async with http.get(s.url + "/ui/", allow_redirects=False) as resp:
                assert resp.status == 301 and resp.headers["location"] == "../ui"
