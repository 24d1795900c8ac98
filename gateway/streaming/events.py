"""Normalized stream events: every upstream wire format decodes into these.

A *token* is an event that carries user-visible output (non-empty text or
reasoning, tool-call data, or a whole batch of embedding vectors). The race is
decided on tokens only.
"""

from __future__ import annotations

from dataclasses import field
from typing import Literal

from gateway.value_class import value_class

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@value_class
class TextDelta:
    """Output text. `raw`, when set, is the same text as a JSON string body (escaped,
    without quotes) cut from an OpenAI-shaped upstream chunk: re-framed, not re-encoded."""

    text: str
    raw: str | None = field(default=None, compare=False, repr=False)


@value_class
class ReasoningDelta:
    text: str


@value_class
class ReasoningSignature:
    """The provider's signature over the reasoning block just streamed (Anthropic's extended
    thinking): not output, but what a client must send back with that block in a later
    turn. Doors that cannot carry it ignore it."""

    signature: str


@value_class
class ToolCallDelta:
    """One fragment of a tool call. `id`/`name` only on the first fragment of `index`."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@value_class
class Finish:
    reason: FinishReason


@value_class
class Usage:
    """Token counts as the provider reported them. Later Usage events replace earlier ones
    (providers report cumulatively).

    `reasoning` is part of `completion` (OpenAI's convention) unless
    `reasoning_in_completion` is False: some providers report reasoning tokens beside
    completion tokens, and a `total` that includes them. `total` is the provider's own
    total, None when it reports none.
    """

    prompt: int = 0
    completion: int = 0
    cached: int = 0
    reasoning: int = 0
    total: int | None = None
    reasoning_in_completion: bool = True

    @property
    def output(self) -> int:
        """Output tokens to price: completion, plus reasoning reported beside it."""
        return self.completion if self.reasoning_in_completion else self.completion + self.reasoning

    @property
    def total_tokens(self) -> int:
        """The provider's total, or prompt + output when it reports none."""
        return self.total if self.total is not None else self.prompt + self.output


@value_class
class ResponseMeta:
    """What the upstream says about itself: the model version that served the request."""

    model: str | None = None
    fingerprint: str | None = None


@value_class
class UpstreamError:
    """An upstream failure, before or during the stream.

    `status` is the HTTP status the gateway would report for it (0 when unknown,
    e.g. a connection reset). `opens_circuit` says whether it counts against the
    deployment's health (a 400 caused by the client does not).
    """

    status: int
    type: str
    message: str
    retryable: bool
    code: str | None = None
    param: str | None = None
    retry_after_s: float | None = None
    opens_circuit: bool = True


@value_class
class Embeddings:
    """Every vector of one embeddings request, in input order: an answer that arrives whole
    (there is no first token to race on), so it counts as the answer's one token."""

    vectors: list[list[float]] = field(compare=True, repr=False)


Event = (
    TextDelta
    | ReasoningDelta
    | ReasoningSignature
    | ToolCallDelta
    | Finish
    | Usage
    | ResponseMeta
    | UpstreamError
    | Embeddings
)


def is_token(event: Event) -> bool:
    """True when the event carries user-visible output (see module doc)."""
    if type(event) is TextDelta or type(event) is ReasoningDelta:
        return bool(event.text)
    if type(event) is ToolCallDelta:
        return bool(event.name or event.arguments or event.id)
    if type(event) is Embeddings:
        return bool(event.vectors)
    return False


def first_token_index(events: list[Event]) -> int:
    """Index of the first token in `events`, or -1."""
    for i, event in enumerate(events):
        if is_token(event):
            return i
    return -1
