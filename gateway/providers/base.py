"""The provider interface: pure translation between ChatRequest / events and one wire protocol.

No adapter opens a socket, sleeps, or reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any, Protocol

from gateway.request import ChatRequest, EmbedRequest
from gateway.streaming.adapter import OneShotCall, StreamDecoder, UpstreamRequest, WireAdapter
from gateway.value_class import value_class

__all__ = [
    "OneShotCall",  # defined in streaming.adapter (the upstream client reads it there)
    "Provider",
    "ProviderSettings",
    "StreamDecoder",  # defined in streaming.adapter (the upstream client reads it there)
    "TargetModel",
    "UnsupportedParams",
    "UpstreamRequest",  # idem
]


@value_class
class ProviderSettings:
    """What an adapter needs from the provider's config entry (secrets already resolved)."""

    name: str
    kind: str
    base_url: str
    api_key: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    max_line_bytes: int = 1 << 20  # `limits.max_sse_line_bytes`: the longest upstream line


@value_class
class TargetModel:
    """The deployment-level settings an adapter reads when it builds a request."""

    model: str
    drop_params: bool = False
    max_tokens_default: int = 4096
    options: Mapping[str, Any] = field(default_factory=dict)
    max_line_bytes: int = 1 << 20  # `limits.max_sse_line_bytes`: the longest upstream line
    batch_size: int | None = None  # embedding inputs per upstream call (None: the adapter's)


class UnsupportedParams(ValueError):
    """The request uses parameters this provider cannot take (and drop_params is off)."""

    def __init__(self, params: list[str], provider: str) -> None:
        self.params = params
        self.provider = provider
        names = ", ".join(sorted(params))
        super().__init__(f"parameter(s) not supported by provider '{provider}': {names}")


class Provider(WireAdapter, Protocol):
    """One wire protocol. Instances are built from ProviderSettings and are immutable.

    `WireAdapter` (decoder, parse_response, parse_error) is the part the upstream client uses.
    """

    settings: ProviderSettings

    def build_request(self, request: ChatRequest, target: TargetModel) -> UpstreamRequest:
        """The upstream streaming request. Raises UnsupportedParams."""
        ...

    def warmup_request(self) -> UpstreamRequest | None:
        """A cheap GET that opens a keep-alive connection (never HEAD); None: cannot warm."""
        ...


class EmbeddingProvider(Provider, Protocol):
    """A provider that also embeds. Adapters without an embeddings API (Anthropic) do not
    have `build_embed_call`; `can_embed` tells them apart."""

    def build_embed_call(self, request: EmbedRequest, target: TargetModel) -> OneShotCall:
        """The upstream calls for `request`, split into batches. Raises UnsupportedParams."""
        ...


def can_embed(provider: object) -> bool:
    return callable(getattr(provider, "build_embed_call", None))


class ContinuingProvider(Provider, Protocol):
    """A provider whose API continues a prefix of the assistant's answer (resume on a
    backup). `continues` is False where the adapter has the method but the server has no
    such mechanism (an OpenAI-compatible kind without a continuation quirk)."""

    continues: bool

    def build_continuation(
        self, request: ChatRequest, target: TargetModel, prefix: str
    ) -> UpstreamRequest:
        """The streaming request that answers `request` starting from `prefix` (the text
        the client already has, trailing whitespace removed); only the rest is streamed.
        Raises UnsupportedParams when this request cannot be continued here."""
        ...


def can_continue(provider: object) -> bool:
    return getattr(provider, "continues", False) is True and callable(
        getattr(provider, "build_continuation", None)
    )
