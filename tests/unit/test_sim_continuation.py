"""The simulators continue a given prefix of their answer, each through its protocol's own
mechanism, deterministically: what follows the prefix is the rest of the same answer."""

from __future__ import annotations

import random
from typing import Any

import orjson

from gateway.sim.config import SimModelConfig
from gateway.sim.plan import continuation, plan_request, prompt_words
from gateway.sim.wire import ErrorReply, WireRequest
from gateway.sim.wire_anthropic import AnthropicWire
from gateway.sim.wire_ollama import OllamaWire
from gateway.sim.wire_openai import OpenAIWire

USER = {"role": "user", "content": "tell me"}


def parse(wire: Any, body: dict[str, Any]) -> WireRequest | ErrorReply:
    return wire.parse_request(orjson.dumps(body), None, {}, "rid")


def openai(messages: list[dict[str, Any]], **extra: Any) -> WireRequest | ErrorReply:
    return parse(OpenAIWire(), {"model": "m", "messages": messages, "stream": True, **extra})


def test_openai_family_continues_a_prefix_message_or_the_final_message() -> None:
    prefix = {"role": "assistant", "content": "The quick", "prefix": True}
    parsed = openai([USER, prefix])
    assert isinstance(parsed, WireRequest) and parsed.continue_from == "The quick"
    plain = {"role": "assistant", "content": "The quick"}
    parsed = openai([USER, plain])  # no flag: a new answer after an assistant turn
    assert isinstance(parsed, WireRequest) and parsed.continue_from is None
    vllm = openai([USER, plain], continue_final_message=True, add_generation_prompt=False)
    assert isinstance(vllm, WireRequest) and vllm.continue_from == "The quick"
    refused = openai([USER, plain], continue_final_message=True)  # vLLM's own check
    assert isinstance(refused, ErrorReply) and refused.status == 400


def test_anthropic_continues_a_prefill_and_refuses_trailing_whitespace() -> None:
    body = {"model": "m", "max_tokens": 9, "stream": True}
    ok = parse(
        AnthropicWire(), {**body, "messages": [USER, {"role": "assistant", "content": "Hi"}]}
    )
    assert isinstance(ok, WireRequest) and ok.continue_from == "Hi"
    blocks = [{"type": "text", "text": "Hi there"}]
    ok = parse(
        AnthropicWire(), {**body, "messages": [USER, {"role": "assistant", "content": blocks}]}
    )
    assert isinstance(ok, WireRequest) and ok.continue_from == "Hi there"
    bad = parse(
        AnthropicWire(), {**body, "messages": [USER, {"role": "assistant", "content": "Hi "}]}
    )
    assert isinstance(bad, ErrorReply) and bad.status == 400
    assert b"trailing whitespace" in bad.body


def test_ollama_continues_a_trailing_assistant_message() -> None:
    messages = [USER, {"role": "assistant", "content": "Once"}]
    parsed = parse(OllamaWire(), {"model": "m", "messages": messages})
    assert isinstance(parsed, WireRequest) and parsed.continue_from == "Once"


def test_a_prompt_seeded_answer_is_the_same_everywhere_and_continues_exactly() -> None:
    cfg = SimModelConfig(tokens=12, text_from_prompt=True, ttft_ms=1)
    whole = "".join(prompt_words("tell me", 12))

    def reply(seed: str, continue_from: str | None = None) -> str:
        req = WireRequest("m", True, last_user_text="tell me", continue_from=continue_from)
        plan = plan_request(cfg, random.Random(seed), req, model="m", request_n=0, created=0)
        return "".join(plan.reply.text)

    assert reply("server a") == reply("server b") == whole
    for cut in range(1, len(whole)):
        assert whole[:cut] + reply("server c", whole[:cut]) == whole
    assert reply("d", "not the start") == whole  # a wrong prefix shows as duplicate text


def test_continuation_of_the_whole_answer_is_empty() -> None:
    assert continuation(("a", " b"), "a b") == ()
    assert continuation(("a", " b"), "a") == (" b",)
