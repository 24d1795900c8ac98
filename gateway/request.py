"""The gateway's view of one client request: chat (OpenAI Chat Completions shape) or embeddings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

# Fields the gateway itself interprets; everything else in the body is passed
# through to OpenAI-family upstreams unchanged (`ChatRequest.extra`).
KNOWN_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "user",
        "logprobs",
        "top_logprobs",
    }
)


class AnthropicNative(TypedDict, total=False):
    """What a request that came in Anthropic's protocol carries for an Anthropic winner only.

    The Messages front door fills it; the Anthropic adapter reads it; every other adapter
    ignores it, so these things are kept when the winner speaks Anthropic's protocol and
    dropped elsewhere. A *path* names an element of `ChatRequest.messages` or `params
    ["tools"]` as the Anthropic adapter walks them: `messages[3].content[1]` (a part),
    `messages[3].tool_calls[0]` (an assistant tool call), `messages[4]` (a tool message, i.e.
    a `tool_result` block), `tools[2]`.
    """

    blocks: dict[str, dict[str, Any]]  # path -> keys set on the block built from it
    # (cache_control, is_error)
    thinking: dict[str, list[dict[str, Any]]]  # "messages[i]" -> thinking / redacted_thinking
    # blocks (signed by Anthropic) that lead that assistant turn
    body: dict[str, Any]  # request body fields: top_k, thinking (the client's exact config,
    # authoritative: reasoning_effort is then a hint for the others), output_config,
    # cache_control, context_management
    beta: str  # the client's anthropic-beta header, added to the deployment's own


@dataclass(slots=True)
class ChatRequest:
    """A validated chat request.

    `messages` keep the OpenAI shape (list of dicts). `params` holds the known
    sampling/tool fields that were present (None values dropped); `extra`
    holds unknown top-level fields, forwarded to OpenAI-family upstreams. `anthropic`
    holds what only an Anthropic upstream can take (see AnthropicNative); it is set (maybe
    empty) exactly when the request came through the Messages door.
    """

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    include_usage: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    anthropic: AnthropicNative | None = None

    @property
    def max_tokens(self) -> int | None:
        value = self.params.get("max_completion_tokens", self.params.get("max_tokens"))
        return value if isinstance(value, int) else None

    @property
    def stop(self) -> list[str]:
        value = self.params.get("stop")
        if value is None:
            return []
        return [value] if isinstance(value, str) else list(value)

    def estimated_prompt_tokens(self) -> int:
        """Cheap estimate: ~4 characters per token of text, plus 4 tokens per message."""
        chars = 0
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        chars += len(part["text"])
        return chars // 4 + 4 * len(self.messages)


EncodingFormat = Literal["float", "base64"]


@dataclass(slots=True)
class EmbedRequest:
    """A validated embeddings request (OpenAI `POST /v1/embeddings` shape).

    `inputs` is never empty and is either all texts or all token arrays (a single
    string or token array from the client becomes a list of one). `encoding_format` is
    how the client wants the vectors back; upstreams are always asked for floats.
    `extra` holds unknown top-level fields, forwarded to OpenAI-family upstreams.
    """

    model: str
    inputs: list[str] | list[list[int]]
    encoding_format: EncodingFormat = "float"
    dimensions: int | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # Read by the pipeline as it reads a ChatRequest: an embeddings answer arrives whole.
    @property
    def stream(self) -> bool:
        return False

    @property
    def max_tokens(self) -> int | None:
        return None

    @property
    def tokenized(self) -> bool:
        """The inputs are token arrays, not texts."""
        return bool(self.inputs) and not isinstance(self.inputs[0], str)

    def texts(self) -> list[str]:
        """The inputs as texts (empty for token arrays)."""
        return [] if self.tokenized else self.inputs  # type: ignore[return-value]

    def estimated_prompt_tokens(self) -> int:
        return estimate_input_tokens(self.inputs)


AnyRequest = ChatRequest | EmbedRequest  # what a front door hands to the pipeline


def estimate_input_tokens(inputs: list[str] | list[list[int]]) -> int:
    """Embedding inputs' tokens: exact for token arrays, ~4 characters a token for text."""
    return sum(len(item) if isinstance(item, list) else max(1, len(item) // 4) for item in inputs)
