"""Continuation requests (resume on a backup): each provider's own way of going on from a
prefix of the assistant's answer, and which deployments may be asked at all."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from gateway.check_config import check_config_main
from gateway.config import parse_config
from gateway.providers.base import (
    ContinuingProvider,
    ProviderSettings,
    TargetModel,
    UnsupportedParams,
    can_continue,
)
from gateway.providers.registry import create
from gateway.request import ChatRequest
from gateway.routing.health import HealthRegistry
from gateway.routing.ratelimit import MemoryRateLimiter
from gateway.streaming.plan import Candidate
from gateway.upstreams import Upstreams, _remaining

CHAT = ChatRequest(
    model="m",
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    stream=True,
    params={"max_tokens": 100, "temperature": 0.5},
)
TARGET = TargetModel("model-x")


def provider(kind: str, base_url: str = "http://up.test/v1", **options: Any) -> Any:
    return create(ProviderSettings("p", kind, base_url, "key-123", options))


def body_of(kind: str, request: ChatRequest = CHAT, **options: Any) -> tuple[str, Any]:
    adapter = cast(ContinuingProvider, provider(kind, **options))
    built = adapter.build_continuation(request, TARGET, "Hello, wor")
    return built.url, orjson.loads(built.body)


@pytest.mark.parametrize("kind", ["deepseek", "mistral"])
def test_deepseek_and_mistral_mark_the_last_assistant_message_as_a_prefix(kind: str) -> None:
    _, body = body_of(kind)
    assert body["messages"][-1] == {"role": "assistant", "content": "Hello, wor", "prefix": True}
    assert body["messages"][:-1] == CHAT.messages
    assert body["stream"] is True and "continue_final_message" not in body


@pytest.mark.parametrize("base", ["https://api.deepseek.com", "https://api.deepseek.com/v1"])
def test_deepseek_continues_on_its_beta_endpoint(base: str) -> None:
    adapter = cast(ContinuingProvider, provider("deepseek", base))
    assert adapter.build_continuation(CHAT, TARGET, "x").url == (
        "https://api.deepseek.com/beta/chat/completions"
    )
    assert adapter.build_request(CHAT, TARGET).url == base + "/chat/completions"


def test_vllm_continues_the_final_message_without_a_generation_prompt() -> None:
    url, body = body_of("vllm")
    assert url == "http://up.test/v1/chat/completions"
    assert body["messages"][-1] == {"role": "assistant", "content": "Hello, wor"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False


@pytest.mark.parametrize("kind", ["ollama_openai", "ollama"])
def test_ollama_continues_a_plain_trailing_assistant_message(kind: str) -> None:
    url, body = body_of(kind)
    assert body["messages"][-1] == {"role": "assistant", "content": "Hello, wor"}
    assert url.endswith("/chat/completions" if kind == "ollama_openai" else "/api/chat")


def test_anthropic_prefills_the_assistant_turn() -> None:
    url, body = body_of("anthropic", base_url="https://api.anthropic.com")
    assert url == "https://api.anthropic.com/v1/messages"
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello, wor"}]},
    ]


def test_anthropic_cannot_prefill_after_extended_thinking() -> None:
    thinking = ChatRequest(
        model="m", messages=CHAT.messages, params={"reasoning_effort": "high", "max_tokens": 9}
    )
    adapter = cast(ContinuingProvider, provider("anthropic"))
    with pytest.raises(UnsupportedParams, match="extended thinking"):
        adapter.build_continuation(thinking, TARGET, "x")


def test_a_clients_own_prefill_is_extended_not_repeated() -> None:
    prefilled = ChatRequest(
        model="m", messages=[*CHAT.messages, {"role": "assistant", "content": "{"}]
    )
    _, body = body_of("mistral", prefilled)
    assert body["messages"][-1] == {"role": "assistant", "content": "{Hello, wor", "prefix": True}
    assert len(body["messages"]) == 3


@pytest.mark.parametrize("kind", ["openai", "openai_compatible", "groq", "together", "gemini"])
def test_kinds_without_a_continuation_mechanism_cannot_continue(kind: str) -> None:
    assert not can_continue(provider(kind))


@pytest.mark.parametrize(
    "kind", ["deepseek", "mistral", "vllm", "ollama_openai", "anthropic", "ollama"]
)
def test_kinds_with_a_continuation_mechanism_can(kind: str) -> None:
    assert can_continue(provider(kind))


def test_a_compatible_server_declares_its_mechanism_by_option() -> None:
    adapter = provider("openai_compatible", continuation="continue_final_message")
    assert can_continue(adapter)
    with pytest.raises(ValueError, match="'continuation' must be one of"):
        provider("openai_compatible", continuation="sometimes")
    with pytest.raises(ValueError, match="'continuation_path' must be a URL path"):
        provider("deepseek", continuation_path="beta")


def test_the_output_limit_shrinks_by_what_the_answer_already_produced() -> None:
    assert _remaining(CHAT, 30).params["max_tokens"] == 70
    assert _remaining(CHAT, 500).params["max_tokens"] == 1  # never 0 or negative
    newer = ChatRequest(model="m", messages=CHAT.messages, params={"max_completion_tokens": 50})
    assert _remaining(newer, 20).params == {"max_completion_tokens": 30}
    assert CHAT.params["max_tokens"] == 100  # the original request is untouched


def test_only_deployments_that_can_continue_are_asked() -> None:
    config = parse_config(
        {
            "providers": {
                "ds": {"kind": "deepseek", "base_url": "http://127.0.0.1:9"},
                "oa": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
                "an": {"kind": "anthropic", "base_url": "http://127.0.0.1:9"},
            },
            "deployments": {
                "cut": {"provider": "ds", "model": "a"},
                "deepseek": {"provider": "ds", "model": "b"},
                "gpt": {"provider": "oa", "model": "c"},
                "claude-new": {"provider": "an", "model": "d", "continuation": False},
                "claude": {"provider": "an", "model": "e"},
            },
            "routes": {"chat": {"deployments": ["cut", "deepseek", "gpt", "claude-new", "claude"]}},
        },
        env={},
    )
    upstreams = Upstreams(config)
    candidates = [Candidate(name) for name in config.deployments]
    continuer = upstreams.continuer(CHAT, candidates, MemoryRateLimiter({}), HealthRegistry({}))
    able, _ = continuer("Hello", 3, frozenset({"cut"}))
    assert [c.name for c in able] == ["deepseek", "claude"]
    thinking = ChatRequest(model="m", messages=CHAT.messages, params={"reasoning_effort": "low"})
    continuer = upstreams.continuer(thinking, candidates, MemoryRateLimiter({}), HealthRegistry({}))
    able, _ = continuer("Hello", 3, frozenset())
    assert [c.name for c in able] == ["cut", "deepseek"]


def test_check_config_warns_when_a_resume_route_has_nothing_to_go_on_on(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(
        """
providers:
  oa: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
  ds: {kind: deepseek, base_url: "http://127.0.0.1:9"}
deployments:
  gpt: {provider: oa, model: a}
  deepseek: {provider: ds, model: b}
routes:
  lonely: {deployments: [gpt, deepseek], resume: true}
  fine: {deployments: [deepseek, gpt]}
"""
    )
    out, err = io.StringIO(), io.StringIO()
    assert check_config_main(str(path), out=out, err=err) == 0
    assert err.getvalue().count("warning: routes.") == 1
    assert (
        "routes.lonely.resume: 1 deployment(s) can continue a prefix (deepseek)" in err.getvalue()
    )
