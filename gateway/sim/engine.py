"""Timing and fault engine: plays a `Plan` through a renderer onto a sink.

The schedule is absolute (first token at start + TTFT, token i at the previous
deadline + itl[i]) so slow writes do not accumulate drift. Cancellation (the
client went away) propagates; the caller records it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from gateway.sim.log import SimLog, SimRecord, now
from gateway.sim.plan import Plan
from gateway.sim.wire import StreamRenderer


class Sink(Protocol):
    """Where the bytes go: an HTTP response in the app, a buffer in unit tests."""

    async def open(self, content_type: str) -> None:
        """Send status line and headers."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def send(self, content_type: str, body: bytes) -> None:
        """Send a whole response (with a content-length) at once."""
        ...

    async def close(self) -> None:
        """Finish the response normally."""
        ...

    def cut(self) -> None:
        """Drop the connection without a terminator."""
        ...


async def _sleep_until(deadline: float) -> None:
    delay = deadline - now()
    await asyncio.sleep(delay if delay > 0 else 0)


async def _wait_first_token(
    deadline: float, keepalive: bytes, keepalive_ms: float, sink: Sink
) -> None:
    """Sleep until the first token is due, sending keep-alives meanwhile."""
    if not keepalive or keepalive_ms <= 0:
        await _sleep_until(deadline)
        return
    interval = keepalive_ms / 1000
    while (left := deadline - now()) > 0:
        await asyncio.sleep(min(left, interval))
        if deadline - now() > 0:
            await sink.write(keepalive)


async def play_stream(
    plan: Plan,
    renderer: StreamRenderer,
    sink: Sink,
    record: SimRecord,
    log: SimLog,
    *,
    start: float,
    prelude: bool,
    keepalive_ms: float,
    headers_at_first_token: bool = False,
) -> None:
    """Stream one reply: headers and prelude at once (or, `headers_at_first_token`, with
    the first token), keep-alives, tokens, terminator."""
    deadline = start + plan.ttft_ms / 1000
    if headers_at_first_token:
        await log.changed()  # planned, and holding everything until its first token
        await _sleep_until(deadline)
    await sink.open(renderer.content_type)
    record.headers_sent = now()
    record.status = 200
    await log.changed()
    head = renderer.prelude()
    if prelude and head:
        await sink.write(head)
        head = b""
    await _wait_first_token(deadline, renderer.keepalive(), keepalive_ms, sink)
    count = renderer.token_count()
    stop_after = plan.fault_after if plan.fault is not None else None
    for i in range(count):
        if stop_after is not None and i == stop_after:
            break
        if i > 0:
            deadline += plan.itl_ms[i] / 1000
        if plan.stall_before == i:
            record.stalled = True
            deadline += plan.stall_ms / 1000
        await _sleep_until(deadline)
        await sink.write(head + renderer.token(i))
        head = b""
        record.tokens_sent = i + 1
        written = now()
        if record.token_times is not None:
            record.token_times.append(written)
        if i == 0:
            record.first_token = written
            await log.changed()
    if plan.fault == "cut":
        record.outcome = "cut"
        sink.cut()
        return
    if plan.fault == "midstream_error":
        record.outcome = "midstream_error"
        await sink.write(head + renderer.midstream_error())
        await sink.close()
        return
    if plan.stall_before is not None and plan.stall_before >= count:
        record.stalled = True
        await _sleep_until(deadline + plan.stall_ms / 1000)
    await sink.write(head + renderer.finish())
    record.outcome = "completed"
    await sink.close()


async def play_body(
    plan: Plan,
    renderer: StreamRenderer,
    sink: Sink,
    record: SimRecord,
    *,
    start: float,
    keepalive_ms: float,
    on_error: int = 500,
) -> int | None:
    """A non-streaming reply: one JSON body after TTFT + every token's time.

    Returns None when the body was sent (or the connection cut), or `on_error` when
    the plan's in-stream error must become an HTTP error (sent by the caller).
    """
    deadline = start + plan.total_ms() / 1000
    filler = b""
    if keepalive_ms > 0 and plan.fault != "midstream_error":
        filler = renderer.body_keepalive()
    if filler:  # DeepSeek-style: headers now, blank lines while the body is computed
        await sink.open(renderer.body_content_type)
        record.headers_sent = now()
        record.status = 200
        await _wait_first_token(deadline, filler, keepalive_ms, sink)
    else:
        await _sleep_until(deadline)
    record.stalled = plan.stall_before is not None
    if plan.fault == "cut":
        record.outcome = "cut"
        sink.cut()
        return None
    if plan.fault == "midstream_error":
        record.outcome = "midstream_error"
        return on_error
    record.outcome = "completed"
    if filler:
        await sink.write(renderer.body())
        await sink.close()
    else:
        record.status = 200
        await sink.send(renderer.body_content_type, renderer.body())
        record.headers_sent = now()
    record.first_token = now()
    record.tokens_sent = renderer.token_count()
    return None
