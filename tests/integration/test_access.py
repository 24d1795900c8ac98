"""What a key may reach: its routes (403 route_not_allowed), its own rate limit, and
deployments named directly (off unless allowed; the strictest residency and governance of
the routes holding the deployment apply)."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest

from tests.gateways import inside_one_minute
from tests.stack import FAST, Stack, stack

TEAM_A = "team-a-secret-0123456789"
TEAM_B = "team-b-secret-0123456789"
SERVERS = {"a": {"kind": "openai", "models": {"eu-dep": FAST, "us-dep": FAST, "loose": FAST}}}
DEPLOYMENTS = {"eu-dep": {"region": "eu"}, "us-dep": {"region": "us"}, "loose": {"region": "us"}}
ROUTES = {
    "eu-only": {"deployments": ["eu-dep", "us-dep"], "data_residency": ["eu"]},
    "strict": {"deployments": ["eu-dep"], "governance": {"pii": {"email": "block"}}},
    "open": {"deployments": ["loose"]},
}
MSG = [{"role": "user", "content": "hi"}]


async def chat(s: Stack, model: str, key: str | None = None, text: str = "hi") -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{s.url}/v1/chat/completions", json=body, headers=headers) as r:
            return r.status, await r.json(content_type=None)


async def models(s: Stack, key: str) -> list[str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{s.url}/v1/models", headers={"authorization": f"Bearer {key}"}) as r:
            return [m["id"] for m in (await r.json())["data"]]


async def test_a_key_reaches_only_its_routes() -> None:
    keys = [{"key": TEAM_A, "name": "team-a", "routes": ["open"]}, TEAM_B]
    direct_off = {"allow_direct_deployments": False}
    async with stack(SERVERS, ROUTES, DEPLOYMENTS, auth={"keys": keys}, routing=direct_off) as s:
        assert (await chat(s, "open", TEAM_A))[0] == 200
        status, err = await chat(s, "eu-only", TEAM_A)
        assert status == 403
        assert err["error"]["type"] == "permission_error"
        assert err["error"]["code"] == "route_not_allowed" and err["error"]["param"] == "model"
        assert "may use: open" in err["error"]["message"]
        assert s.records("eu-dep") == [] and s.records("us-dep") == []
        assert await models(s, TEAM_A) == ["open"]
        assert await models(s, TEAM_B) == ["eu-only", "strict", "open"]  # no deployments
        assert (await chat(s, "eu-only", TEAM_B))[0] == 200


async def test_a_key_has_its_own_rate_limit() -> None:
    keys = [{"key": TEAM_A, "name": "team-a", "rpm": 1}, TEAM_B]
    async with stack(
        SERVERS, ROUTES, DEPLOYMENTS, auth={"keys": keys}, routing={"key_rpm": 5}
    ) as s:
        await inside_one_minute(5)  # the counts below are of one window
        assert (await chat(s, "open", TEAM_A))[0] == 200
        status, err = await chat(s, "open", TEAM_A)
        assert status == 429 and err["error"]["code"] == "rate_limit_exceeded"
        for _ in range(5):  # the other key has the default limit, and its own window
            assert (await chat(s, "open", TEAM_B))[0] == 200
        assert (await chat(s, "open", TEAM_B))[0] == 429


async def test_naming_a_deployment_is_off_by_default() -> None:
    keys = [{"key": TEAM_A, "name": "team-a", "allow_direct_deployments": True}, TEAM_B]
    direct_off = {"allow_direct_deployments": False}
    async with stack(SERVERS, ROUTES, DEPLOYMENTS, auth={"keys": keys}, routing=direct_off) as s:
        status, err = await chat(s, "loose", TEAM_B)
        assert status == 403 and err["error"]["code"] == "direct_deployment_not_allowed"
        assert "direct deployment access is off" in err["error"]["message"]
        assert s.records("loose") == []
        assert "loose" not in await models(s, TEAM_B)
        async with aiohttp.ClientSession() as http:
            auth = {"authorization": f"Bearer {TEAM_B}"}
            async with http.get(f"{s.url}/v1/models/loose", headers=auth) as r:
                assert r.status == 404
            async with http.get(f"{s.url}/v1/models/eu-only", headers=auth) as r:
                assert r.status == 200
        client = openai.AsyncOpenAI(base_url=f"{s.url}/v1", api_key=TEAM_B, max_retries=0)
        with pytest.raises(openai.PermissionDeniedError) as info:
            await client.chat.completions.create(model="loose", messages=MSG)  # type: ignore[arg-type]
        assert info.value.code == "direct_deployment_not_allowed"
        await client.close()
        # the key that may
        assert (await chat(s, "loose", TEAM_A))[0] == 200
        assert "loose" in await models(s, TEAM_A)


async def test_a_deployment_named_directly_keeps_the_residency_of_its_routes() -> None:
    async with stack(SERVERS, ROUTES, DEPLOYMENTS) as s:  # direct access on (tests.stack)
        status, err = await chat(s, "us-dep", None)  # only in an eu-only route
        assert status == 400 and err["error"]["code"] == "no_compliant_deployment"
        assert s.records("us-dep") == []
        assert (await chat(s, "eu-dep", None))[0] == 200
        assert (await chat(s, "loose", None))[0] == 200  # its only route does not restrict it


async def test_a_deployment_named_directly_gets_the_strictest_governance() -> None:
    email = "write to jane.doe@example.com"
    async with stack(SERVERS, ROUTES, DEPLOYMENTS) as s:
        assert (await chat(s, "eu-only", None, email))[0] == 200  # eu-only does not block
        status, err = await chat(s, "eu-dep", None, email)  # strict holds it too, and blocks
        assert status == 400 and err["error"]["code"] == "pii_detected"
        assert len(s.records("eu-dep")) == 1


async def test_a_key_residency_applies_to_a_deployment_named_directly() -> None:
    keys = [{"key": TEAM_A, "name": "team-a", "data_residency": ["eu"]}]
    async with stack(SERVERS, ROUTES, DEPLOYMENTS, auth={"keys": keys}) as s:
        status, err = await chat(s, "loose", TEAM_A)
        assert status == 400 and err["error"]["code"] == "no_compliant_deployment"
        assert s.records("loose") == []
        assert (await chat(s, "eu-dep", TEAM_A))[0] == 200
