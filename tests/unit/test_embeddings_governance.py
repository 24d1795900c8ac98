"""The PII policy over embedding inputs: block, redact, local-only, residency; token arrays
cannot be inspected and are refused while the policy inspects anything."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import parse_config
from gateway.config.model import DeploymentConfig
from gateway.governance.gate import Governance, PolicyRejected
from gateway.request import EmbedRequest

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


def governance(pii: dict[str, str], **route: Any) -> Governance:
    config = parse_config(
        {
            "providers": {"oa": {"kind": "openai", "base_url": "http://o.test/v1"}},
            "deployments": {"e": {"provider": "oa", "model": "m", "type": "embedding"}},
            "governance": {"pii": pii},
            "routes": {"v": {"deployments": ["e"], **route}},
        },
        env={},
    )
    return Governance(config)


def test_redacted_inputs_keep_their_order_and_placeholders_are_stable() -> None:
    gate = governance({"email": "redact"})
    request = EmbedRequest("v", [f"mail {EMAIL}", "nothing here", f"again {EMAIL}"])
    decision = gate.decide_embedding(request, "v")
    assert decision.request.inputs == ["mail <EMAIL_1>", "nothing here", "again <EMAIL_1>"]
    assert request.inputs[0] == f"mail {EMAIL}", "the client's request is not mutated"
    assert decision.audit is not None and decision.audit["redacted"] == ["email"]
    assert EMAIL not in repr(decision.audit)


def test_blocked_type_refuses_the_request_naming_the_type_only() -> None:
    gate = governance({"card": "block"})
    with pytest.raises(PolicyRejected) as info:
        gate.decide_embedding(EmbedRequest("v", ["ok", f"pay {CARD}"]), "v")
    assert info.value.code == "pii_detected"
    assert "card" in info.value.message and CARD not in info.value.message


def test_local_only_and_residency_restrict_the_candidates() -> None:
    gate = governance({"email": "local_only"}, data_residency=["eu"])
    decision = gate.decide_embedding(EmbedRequest("v", [EMAIL]), "v")
    assert decision.allowed is not None
    assert not decision.allowed(DeploymentConfig("x", "oa", "m", region="eu"))
    assert decision.allowed(DeploymentConfig("y", "oa", "m", local=True))


def test_token_arrays_are_refused_while_the_policy_inspects() -> None:
    with pytest.raises(PolicyRejected) as info:
        governance({"email": "redact"}).decide_embedding(EmbedRequest("v", [[1, 2]]), "v")
    assert info.value.code == "pii_uninspectable"
    decision = governance({}).decide_embedding(EmbedRequest("v", [[1, 2]]), "v")
    assert decision.request.inputs == [[1, 2]] and decision.allowed is None


def test_clean_inputs_pass_untouched() -> None:
    request = EmbedRequest("v", ["plain text"])
    decision = governance({"email": "redact", "card": "block"}).decide_embedding(request, "v")
    assert decision.request is request and decision.audit is None
