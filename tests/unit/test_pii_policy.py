"""Policy decisions: block, local_only, redact, allow; counts but never values."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.governance import PII_ACTIONS, PII_TYPES, Inspection, PiiPolicy, inspect_request
from gateway.request import ChatRequest

CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"
PHONE = "415-555-0132"
SSN = "536-22-8726"
KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"
VALUES = (CARD, EMAIL, PHONE, SSN, KEY, "1111", "jane", "8726")


def chat_of(*texts: str) -> ChatRequest:
    return ChatRequest("m", [{"role": "user", "content": t} for t in texts])


def assert_no_values(inspection: Inspection) -> None:
    for shown in (repr(inspection), str(inspection), repr(inspection.audit())):
        for value in VALUES:
            assert value not in shown
    if inspection.redactor is not None:
        for value in VALUES:
            assert value not in repr(inspection.redactor)


def test_policy_validates_types_and_actions() -> None:
    assert set(PII_ACTIONS) == {"redact", "block", "local_only", "allow"}
    with pytest.raises(ValueError, match="unknown PII type 'passport'"):
        PiiPolicy({"passport": "block"})
    with pytest.raises(ValueError, match="must be one of"):
        PiiPolicy({"email": "hide"})
    policy = PiiPolicy({"email": "redact", "card": "block", "ip": "allow"})
    assert policy.inspected == {"email", "card"}
    assert policy.redacted == {"email"}
    assert policy.action("phone") == "allow"
    assert policy == PiiPolicy({"card": "block", "ip": "allow", "email": "redact"})
    assert len({policy, PiiPolicy(dict(policy.actions))}) == 1
    with pytest.raises(TypeError):
        policy.actions["email"] = "allow"  # type: ignore[index]


def test_override_takes_precedence_per_type() -> None:
    glob = PiiPolicy({"email": "redact", "phone": "redact", "card": "block", "secret": "block"})
    route = glob.override({"email": "local_only", "ip": "redact"})
    assert dict(route.actions) == {
        "email": "local_only",
        "phone": "redact",
        "card": "block",
        "secret": "block",
        "ip": "redact",
    }
    assert glob.override(None) is glob and glob.override({}) is glob
    assert dict(glob.actions)["email"] == "redact"


def test_block_names_types_and_counts_never_values() -> None:
    policy = PiiPolicy({"email": "redact", "phone": "redact", "card": "block", "secret": "block"})
    chat = chat_of(f"pay with {CARD} or {CARD}", f"mail {EMAIL}, key {KEY}, call {PHONE}")
    inspection = inspect_request(chat, policy)
    assert inspection.blocked == ("card", "secret")
    assert inspection.counts == {"card": 2, "email": 1, "phone": 1, "secret": 1}
    assert inspection.found == ("card", "email", "phone", "secret")
    assert not inspection.requires_local
    assert inspection.block_message().endswith(": card, secret")
    assert inspection.audit() == {
        "types": ["card", "email", "phone", "secret"],
        "counts": {"card": 2, "email": 1, "phone": 1, "secret": 1},
        "blocked": ["card", "secret"],
        "local_only": [],
        "redacted": ["email", "phone"],
    }
    assert_no_values(inspection)


def test_local_only_required() -> None:
    policy = PiiPolicy({"national_id": "local_only", "email": "redact"})
    inspection = inspect_request(chat_of(f"my SSN is {SSN}"), policy)
    assert inspection.requires_local and inspection.local_only == ("national_id",)
    assert not inspection.blocked and inspection.redactor is None
    assert inspection.request.messages[0]["content"] == f"my SSN is {SSN}"  # not altered
    assert_no_values(inspection)


def test_allow_and_absent_types_are_not_inspected() -> None:
    policy = PiiPolicy({"email": "allow", "card": "block"})
    chat = chat_of(f"mail {EMAIL}, call {PHONE}")
    inspection = inspect_request(chat, policy)
    assert inspection.counts == {} and not inspection.blocked
    assert inspection.request is chat and inspection.redactor is None
    empty = inspect_request(chat, PiiPolicy({}))
    assert empty.request is chat and empty.counts == {}


def test_redaction_with_counts() -> None:
    policy = PiiPolicy({"email": "redact", "phone": "redact"})
    chat = chat_of(f"mail {EMAIL} twice {EMAIL}, call {PHONE}", "nothing to see")
    inspection = inspect_request(chat, policy)
    assert inspection.counts == {"email": 2, "phone": 1}
    assert inspection.redacted == ("email", "phone")
    assert inspection.redactor is not None
    sent = inspection.request.messages
    assert sent[0]["content"] == "mail <EMAIL_1> twice <EMAIL_1>, call <PHONE_1>"
    assert sent[1] is chat.messages[1]
    assert chat.messages[0]["content"].startswith(f"mail {EMAIL}")
    assert_no_values(inspection)


def test_every_text_of_a_request_is_walked_and_images_are_not() -> None:
    policy = PiiPolicy({"email": "block"})
    where: list[list[dict[str, Any]]] = [
        [{"role": "user", "content": EMAIL}],
        [{"role": "user", "content": [{"type": "text", "text": EMAIL}]}],
        [{"role": "assistant", "content": [{"type": "refusal", "refusal": EMAIL}]}],
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {
                        "id": "2",
                        "type": "function",
                        "function": {"name": "f", "arguments": f'{{"to":"{EMAIL}"}}'},
                    },
                ],
            }
        ],
        [{"role": "assistant", "content": None, "function_call": {"arguments": EMAIL}}],
        [{"role": "tool", "tool_call_id": "2", "content": f'{{"from":"{EMAIL}"}}'}],
    ]
    for messages in where:
        assert inspect_request(ChatRequest("m", messages), policy).blocked == ("email",)
    image = {"type": "image_url", "image_url": {"url": f"https://x.test/?to={EMAIL}"}}
    untouched = [{"role": "user", "content": [image, {"type": "text", "text": "hi"}]}]
    assert inspect_request(ChatRequest("m", untouched), policy).counts == {}


def test_pii_types_match_the_config_loader() -> None:
    from gateway.config.sections import PII_ACTIONS as LOADER_ACTIONS
    from gateway.config.sections import PII_TYPES as LOADER_TYPES

    assert tuple(LOADER_TYPES) == PII_TYPES
    assert tuple(LOADER_ACTIONS) == PII_ACTIONS
