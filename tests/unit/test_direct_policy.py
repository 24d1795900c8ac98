"""The policy of a deployment named directly: the strictest of the routes holding it."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from gateway.config.holding import strictest_residency
from gateway.config.model import KeyConfig, OutputFilterConfig
from gateway.governance.gate import Governance, PolicyRejected, merged_outputs
from gateway.governance.policy import PiiPolicy, strictest
from gateway.request import ChatRequest
from gateway.routing.table import RouteTable


def test_the_strictest_action_wins_per_type() -> None:
    merged = strictest(
        [
            PiiPolicy({"email": "redact", "phone": "block"}),
            PiiPolicy({"email": "local_only", "card": "allow"}),
            PiiPolicy({"email": "block"}),
            PiiPolicy({"phone": "redact", "card": "redact"}),
        ]
    )
    assert dict(merged.actions) == {"email": "block", "phone": "block", "card": "redact"}
    assert dict(strictest([]).actions) == {}


def test_residencies_intersect_and_none_restricts_nothing() -> None:
    assert strictest_residency([None, ("eu", "us"), ("us", "apac")]) == ("us",)
    assert strictest_residency([("eu",), ("us",)]) == ()
    assert strictest_residency([None, None]) is None


def test_output_filters_combine() -> None:
    a = OutputFilterConfig(action="redact", window=32, detectors=("email",), patterns={"x": "a"})
    b = OutputFilterConfig(action="stop", window=64, detectors=("phone", "email"))
    merged = merged_outputs([a, None, b])
    assert merged is not None
    assert merged.action == "stop" and merged.window == 64
    assert merged.detectors == ("email", "phone") and merged.patterns == {"x": "a"}
    assert merged_outputs([None, a]) is a and merged_outputs([None]) is None


def test_a_deployment_gets_the_policy_of_every_route_holding_it() -> None:
    config = parse_config(
        {
            "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "deployments": {
                "eu": {"provider": "p", "model": "a", "region": "eu"},
                "us": {"provider": "p", "model": "b", "region": "us"},
            },
            "routes": {
                "eu-only": {"deployments": ["eu", "us"], "data_residency": ["eu"]},
                "tiered": {
                    "deployments": ["eu"],
                    "tiers": [{"name": "big", "when": {"tools": True}, "deployments": ["us"]}],
                    "governance": {"pii": {"email": "block"}},
                },
            },
        },
        env={},
    )
    table = RouteTable(config)
    assert table.holding("us") == ("eu-only", "tiered")  # a tier holds it too
    us = table.get("us")
    assert us is not None and us.direct and us.data_residency == ("eu",)
    gate = Governance(config)
    chat = ChatRequest(model="us", messages=[{"role": "user", "content": "hi"}])
    decision = gate.decide(chat, "us")
    assert decision.allowed is not None
    assert not decision.allowed(config.deployments["us"])  # only an EU-only route had it
    email = ChatRequest(model="us", messages=[{"role": "user", "content": "a@example.com"}])
    with pytest.raises(PolicyRejected):  # the tiered route blocks e-mail addresses
        gate.decide(email, "us")
    assert gate.decide(email, "eu-only").chat is email  # that route does not
    key = KeyConfig("k", b"", data_residency=("us",))  # a key's regions intersect
    narrowed = gate.decide(chat, "eu", key).allowed
    assert narrowed is not None and not narrowed(config.deployments["eu"])
