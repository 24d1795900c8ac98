"""`limits.max_sse_line_bytes` and `limits.stream_buffer_events` reach what they bound."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from gateway.pipeline import Caller
from gateway.request import ChatRequest
from gateway.runtime import Gateway
from gateway.streaming.events import UpstreamError
from gateway.upstreams import Upstreams


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini", "ollama"])
def test_max_sse_line_bytes_bounds_every_decoder(kind: str) -> None:
    limits = {"max_sse_line_bytes": 64}
    config = parse_config(
        {"providers": {"p": {"kind": kind, "base_url": "http://127.0.0.1:9"}}, "limits": limits}
    )
    decoder = Upstreams(config).providers["p"].decoder()
    body = b'{"x":"' + b"a" * 100 + b'"}'
    line = body + b"\n" if kind == "ollama" else b"data: " + body + b"\n\n"
    [event] = decoder.feed(line)
    assert isinstance(event, UpstreamError) and "max_line_bytes=64" in event.message
    # and the default admits it
    default = parse_config({"providers": {"p": {"kind": kind, "base_url": "http://127.0.0.1:9"}}})
    events = Upstreams(default).providers["p"].decoder().feed(line)
    assert not any(isinstance(e, UpstreamError) and "line too long" in e.message for e in events)


async def test_stream_buffer_events_bounds_the_race_queue() -> None:
    config = parse_config(
        {
            "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "deployments": {
                "d": {"provider": "p", "model": "d"},
                "e": {"provider": "p", "model": "e"},
            },
            # a race: its attempts run in tasks that queue their batches (a lone attempt
            # runs in the request's task and needs no queue)
            "routes": {"r": {"deployments": ["d", "e"], "strategy": "race", "k": 2}},
            "limits": {"stream_buffer_events": 7},
            "latency": {"prewarm": {"enabled": False}},
        }
    )
    gateway = Gateway(config)
    chat = ChatRequest(model="r", messages=[{"role": "user", "content": "hi"}])
    answer = await gateway.pipeline.open(chat, Caller("req_x"), "chat")
    try:
        queue = answer._race._queue
        assert queue is not None and queue.maxsize == 7
    finally:
        await answer.aclose()
        await gateway.close()
