"""What the upstream client needs from a wire adapter: the request to send, and how to read
the answer (a stream decoder, a whole 2xx body, an error status and body).

It lives in streaming so that `streaming/upstream.py` can drive any adapter without
importing providers (streaming sits below providers); `providers.base.Provider` extends
`WireAdapter` with what the rest of the gateway needs (building requests, warm-up).
Pure types: no I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any, Protocol

from gateway.streaming.events import Event, UpstreamError
from gateway.value_class import value_class


@value_class
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str] = field(repr=False)  # carries credentials
    body: bytes


class StreamDecoder(Protocol):
    """Incremental decoder: feed upstream bytes, get normalized events."""

    def feed(self, data: bytes) -> list[Event]: ...

    def close(self) -> list[Event]:
        """End of body. Returns trailing events; a truncated stream yields an UpstreamError."""
        ...


@value_class
class RelaySpec:
    """What the fast relay (`streaming/relay.py`) may forward of a stream without decoding
    it: SSE events that are `prefix` followed by a match of `text_event`, whose group 1
    is the event's JSON-escaped text. A decoder offers one only between events, so the
    relay can take over and give back at event boundaries without losing its state.
    `max_event_bytes`: a longer event is left to the decoder (which enforces the limit)."""

    prefix: bytes
    text_event: re.Pattern[bytes]
    max_event_bytes: int


class WireAdapter(Protocol):
    """Reads one wire protocol's answers; `stream_events` needs nothing more."""

    def decoder(self) -> StreamDecoder: ...

    def parse_response(self, body: bytes) -> list[Event]:
        """A complete non-streaming 2xx body as events."""
        ...

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """A non-2xx upstream response as an error event."""
        ...


@value_class
class OneShotCall:
    """Plain (non-streaming) upstream requests whose JSON answers together make one answer:
    an embeddings request split into the provider's batch size.

    `parse(i, body)` reads the 2xx body of request i into a part, or the UpstreamError saying
    why it cannot; `merge(parts)` joins every part, in request order, into the answer's events.
    """

    requests: tuple[UpstreamRequest, ...]
    parse: Callable[[int, bytes], Any]
    merge: Callable[[list[Any]], list[Event]]
