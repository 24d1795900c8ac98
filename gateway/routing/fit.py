"""Can a deployment's model take this request at all? Context window and capabilities.

Planning drops a candidate before any attempt when its model's context window cannot
hold the estimated prompt plus the output the request may produce (its `max_tokens`,
else the deployment's `max_tokens_default` capped at the model's `max_output_tokens`), or
when the request needs a capability the model is known to lack: images need `vision`,
input audio `audio_input`, tools `tools`, a JSON schema `structured_output`. An unknown
fact (None) never drops a candidate. Embedding requests are not checked (an embedding
model's limit is per input, and the catalogue holds chat models).
"""

from __future__ import annotations

from typing import Literal

from gateway.config.model import DeploymentConfig
from gateway.request import AnyRequest, EmbedRequest
from gateway.routing.tiers import Traits
from gateway.value_class import value_class

Reason = Literal["context_window", "max_output_tokens", "vision", "audio_input", "tools",
                 "structured_output"]  # fmt: skip
CONTEXT_REASONS = frozenset({"context_window", "max_output_tokens"})
AUDIO_PART_TYPES = frozenset({"input_audio"})


@value_class
class Needs:
    prompt_tokens: int
    max_tokens: int | None  # what the client asked for; None: the deployment's default
    images: bool = False
    audio: bool = False
    tools: bool = False
    json_schema: bool = False


@value_class
class Unfit:
    deployment: str
    reason: Reason
    detail: str


def needs_of(chat: AnyRequest, traits: Traits) -> Needs:
    if isinstance(chat, EmbedRequest):  # limits apply per input there: not checked here
        return Needs(prompt_tokens=0, max_tokens=0)
    audio = any(
        isinstance(part, dict) and part.get("type") in AUDIO_PART_TYPES
        for message in chat.messages
        if isinstance(content := message.get("content"), list)
        for part in content
    )
    fmt = chat.params.get("response_format")
    return Needs(
        prompt_tokens=traits.prompt_tokens,
        max_tokens=chat.max_tokens,
        images=traits.images,
        audio=audio,
        tools=traits.tools,
        json_schema=isinstance(fmt, dict) and fmt.get("type") == "json_schema",
    )


def output_budget(dep: DeploymentConfig, needs: Needs) -> int:
    """The output tokens the request may produce on this deployment."""
    if needs.max_tokens is not None:
        return needs.max_tokens
    default = dep.max_tokens_default
    if dep.max_output_tokens is not None:
        default = min(default, dep.max_output_tokens)
    return default


def unfit(dep: DeploymentConfig, needs: Needs) -> Unfit | None:
    """Why `dep` cannot take the request, or None when it can (as far as we know)."""
    caps = dep.capabilities
    checks: tuple[tuple[bool, bool | None, Reason], ...] = (
        (needs.images, caps.vision, "vision"),
        (needs.audio, caps.audio_input, "audio_input"),
        (needs.tools, caps.tools, "tools"),
        (needs.json_schema, caps.structured_output, "structured_output"),
    )
    for wanted, have, reason in checks:
        if wanted and have is False:
            return Unfit(dep.name, reason, f"model {dep.model!r} has no {reason} support")
    limit = dep.max_output_tokens
    if needs.max_tokens is not None and limit is not None and needs.max_tokens > limit:
        return Unfit(
            dep.name,
            "max_output_tokens",
            f"max_tokens {needs.max_tokens} exceeds the model's {limit} output tokens",
        )
    window = dep.context_window
    output = output_budget(dep, needs)
    if window is not None and needs.prompt_tokens + output > window:
        return Unfit(
            dep.name,
            "context_window",
            f"about {needs.prompt_tokens} prompt + {output} output tokens exceed "
            f"the {window}-token context window",
        )
    return None
