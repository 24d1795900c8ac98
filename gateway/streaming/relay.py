"""The fast relay: a winner's plain text chunks, forwarded in the loop iteration that parses
them, with no task woken per chunk.

The general path reads the winner's stream in the request's task: each upstream read
wakes that task, goes through the decoder's generator, the race, the answer and the
encoder, then is written. For the usual middle of an answer, plain text chunks of an
OpenAI-shaped upstream with nothing to transform, all of that produces one re-framed
chunk per read. The relay does exactly that and nothing more: while it runs, the upstream
response's body pieces come to `on_data` straight from aiohttp's parser
(`compat_aiohttp.divert_reader`), after what the reader held unread when it took over
(under load the next chunks often arrive while the general path writes the first: taking
them saves a batch of the general path and its write). Each piece's plain text events
(`RelaySpec`) are cut out and framed as the encoder would frame them (`TextFrame`). The
text of every piece parsed from one upstream read is written together, in one write
without awaiting (`compat_aiohttp.sync_writer`), from a callback queued behind that
read's parsing: the upstream's HTTP chunks of one read become one client write, as one
batch of the general path would (a write per HTTP chunk cost 46 write syscalls per
request at c=50 against the bare proxy's 20; one call_soon per read costs fewer
instructions than wrapping the connection's `data_received` to hear a read's end). The
request's task sleeps on one future for the whole run.

It gives the stream back to the general path at the first thing it does not understand:
any other event (a finish reason, usage, a tool call, `[DONE]`, an error, a comment with a
CR, a CRLF ending), text that is not valid UTF-8 or not a valid JSON string body, an event
over the size limit, a client whose send buffer is full or whose connection is closing,
the body's end or a lost connection. The bytes from that point on are put back into the
reader, so the decoder sees exactly the stream it would have seen; it took over between
two events and gives back between two events. The property tests
(`tests/unit/test_relay_equivalence.py`) show the client gets the same answer both ways.

While it runs it keeps the stream's accounting (one token per text event) and the idle
watchdog (one timer per idle period; a piece only stamps the time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from aiohttp import StreamReader

from gateway.compat_aiohttp import divert_reader, undivert_reader, unwatch_reader, watch_reader
from gateway.streaming.accounting import AttemptRecord
from gateway.streaming.adapter import RelaySpec
from gateway.streaming.attempt import RelaySource
from gateway.streaming.events import UpstreamError, is_token


class Writer(Protocol):
    """Writes to the client without awaiting, once `ready()` said it may."""

    def ready(self) -> bool: ...

    def write(self, data: bytes) -> None: ...


class Framer(Protocol):
    """A door encoder's view of a run of text: the bytes it would write for these
    JSON-escaped text bodies, read together (one event, as the encoder makes of one
    batch of text deltas), keeping whatever the encoder counts (sequence numbers, the
    text of the item). `streaming/encode.TextFrame` is chat's; each door has its own."""

    def frame(self, bodies: list[bytes]) -> bytes: ...


_COLON = 0x3A
_LF = 0x0A

# What `scan` found at the end of what it consumed.
ALL = 0  # everything
INCOMPLETE = 1  # the rest may be the start of an understood event: wait for more
NOT_UNDERSTOOD = 2  # the rest starts with something for the general path


def valid_body(body: bytes) -> bool:
    """A JSON string body the general path would turn into the same text: UTF-8, and
    escapes JSON accepts (the decoder validates them the same way)."""
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError:
            return False
    if body.find(b"\\") >= 0:  # not `in`: on bytes it raises and clears a TypeError inside
        try:
            orjson.loads(b'"' + body + b'"')
        except orjson.JSONDecodeError:
            return False
    return True


def _unfinished(buf: bytes, pos: int, limit: int, lines_from: int) -> int:
    """What `buf[pos:]` is when it does not match: the start of an event still coming
    (INCOMPLETE: no line ended in it after `lines_from` (the end of a matched prefix,
    which may hold an `event:` line) yet, except perhaps its last byte, the end of its
    data line before the blank one), or something else (NOT_UNDERSTOOD)."""
    if len(buf) - pos > limit or buf.find(b"\r", pos) >= 0:
        return NOT_UNDERSTOOD
    newline = buf.find(b"\n", lines_from)
    return INCOMPLETE if newline < 0 or newline == len(buf) - 1 else NOT_UNDERSTOOD


def scan(spec: RelaySpec, buf: bytes) -> tuple[list[bytes], int, int]:
    """The text bodies of `buf`'s leading plain text events (empty ones are skipped, as
    the decoder emits nothing for them), how far they and the ignorable lines between
    them reach, and why the scan stopped there (ALL, INCOMPLETE, NOT_UNDERSTOOD)."""
    prefix = spec.prefix
    after = len(prefix)
    match = spec.text_event.match
    limit = spec.max_event_bytes
    bodies: list[bytes] = []
    pos = 0
    end = len(buf)
    while pos < end:
        first = buf[pos]
        if first == _LF:  # a blank line between events: nothing pending, nothing to do
            pos += 1
            continue
        if first == _COLON:  # a comment line (a keep-alive)
            newline = buf.find(b"\n", pos)
            if newline < 0:
                return bodies, pos, _unfinished(buf, pos, limit, pos)
            if newline - pos > limit or buf.find(b"\r", pos, newline) >= 0:
                return bodies, pos, NOT_UNDERSTOOD
            pos = newline + 1
            continue
        if not buf.startswith(prefix, pos):
            if end - pos < after and prefix.startswith(buf[pos:]):
                return bodies, pos, INCOMPLETE
            return bodies, pos, NOT_UNDERSTOOD
        found = match(buf, pos + after)
        if found is None:
            return bodies, pos, _unfinished(buf, pos, limit, pos + after)
        stop = found.end()
        body = found.group(1)
        if stop - pos > limit or (body and not valid_body(body)):
            return bodies, pos, NOT_UNDERSTOOD
        if body:
            bodies.append(body)
        pos = stop
    return bodies, pos, ALL


class Relay:
    """One run of the fast relay over a winner's stream: `await run(writer)` returns when
    the general path must go on (the stream was given back), or raises if cancelled
    (the stream is given back first). `stalled` is set when the upstream was idle for
    `idle_timeout_s`: the caller then ends the stream with that error."""

    __slots__ = (
        "_carry",
        "_done",
        "_frame",
        "_idle_s",
        "_loop",
        "_pending",
        "_reader",
        "_record",
        "_spec",
        "_timer",
        "_writer",
        "last",
        "stalled",
    )

    def __init__(
        self,
        reader: StreamReader,
        spec: RelaySpec,
        frame: Framer,
        record: AttemptRecord,
        idle_timeout_s: float,
    ) -> None:
        self._reader = reader
        self._spec = spec
        self._frame = frame
        self._record = record
        self._idle_s = idle_timeout_s
        self._loop = asyncio.get_running_loop()
        self._carry = b""
        self._pending: list[bytes] = []  # text bodies parsed and counted, not yet written
        self._done: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._writer: Writer | None = None
        self.last = self._loop.time()
        self.stalled = False

    async def run(self, writer: Writer) -> None:
        done = self._done = self._loop.create_future()
        self._writer = writer
        held = divert_reader(self._reader, self)
        if held is None:
            return
        self.last = self._loop.time()
        self._timer = self._loop.call_later(self._idle_s, self._check_idle)
        try:
            if held:  # arrived while the general path wrote: the relay's first piece
                self.on_data(held)
            await done
        finally:
            self._timer.cancel()
            self._give_back(b"")

    def on_data(self, data: bytes) -> None:
        """A body piece, in the parser's own callback: forward what is understood."""
        carry = self._carry
        self._carry = b""
        buf = carry + data if carry else data
        bodies, at, why = scan(self._spec, buf)
        if bodies:
            if self._pending:  # a later piece of the same read: joins its write
                self._pending += bodies
            elif self._writer.ready():  # type: ignore[union-attr]
                self._pending = bodies
                self._loop.call_soon(self._flush)
            else:
                self._give_back(buf)  # nothing taken: the general path writes it all
                return
            record = self._record
            record.tokens += len(bodies)
            record.relayed += len(bodies)
        if why == NOT_UNDERSTOOD:
            self._give_back(buf[at:])
            return
        if why == INCOMPLETE:
            self._carry = buf[at:]
        self.last = self._loop.time()

    def _flush(self) -> None:
        """Write the text taken since the last write, as one frame (the client's buffer
        was below its limit when the first of it was taken, earlier in this iteration)."""
        pending = self._pending
        if pending:
            self._pending = []
            self._writer.write(self._frame.frame(pending))  # type: ignore[union-attr]

    def on_end(self) -> bytes:
        """The body ended or its connection was lost (the reader is restored already):
        what was carried goes back to it, ahead of its end."""
        self._flush()
        leftover = self._carry
        self._carry = b""
        self._finish()
        return leftover

    def _give_back(self, leftover: bytes) -> None:
        """Stop relaying: what was taken is written, then the reader gets what was
        carried and `leftover` back (the general path writes after the relay, always)."""
        self._flush()
        if self._carry:
            leftover = self._carry + leftover
            self._carry = b""
        undivert_reader(self._reader, leftover)
        self._finish()

    def _finish(self) -> None:
        done = self._done
        if done is not None and not done.done():
            done.set_result(None)

    def _check_idle(self) -> None:
        remaining = self.last + self._idle_s - self._loop.time()
        if remaining > 0:
            self._timer = self._loop.call_later(remaining, self._check_idle)
            return
        self.stalled = True
        self._give_back(b"")


def relayable(source: RelaySource) -> bool:
    """Can this stream's decoder ever offer a `RelaySpec` (an OpenAI-shaped one can)?"""
    return hasattr(source.decoder, "relay_spec")


def spec_now(source: RelaySource) -> RelaySpec | None:
    """What the relay may forward of the stream, if its decoder can hand it over now."""
    spec_of = getattr(source.decoder, "relay_spec", None)
    return None if spec_of is None else spec_of()


def open_relay(
    source: RelaySource,
    frame_of: Callable[[], Framer | None],
    record: AttemptRecord,
    idle_timeout_s: float,
) -> Relay | None:
    """A relay over `source`, if its decoder can hand the stream over now and the
    encoder can frame text now (`frame_of`, asked only then)."""
    spec = spec_now(source)
    if spec is None:
        return None
    frame = frame_of()
    return None if frame is None else Relay(source.reader, spec, frame, record, idle_timeout_s)


class _BodyWatch:
    """A watch hooked on an attempt's reader (`compat_aiohttp.watch_reader`): it keeps
    nothing back, and stops by unhooking."""

    __slots__ = ("_on_token", "_reader")

    def __init__(self, reader: StreamReader, on_token: Callable[[], None]) -> None:
        self._reader = reader
        self._on_token = on_token

    def on_end(self) -> bytes:
        return b""

    def stop(self) -> None:
        unwatch_reader(self._reader)


class TokenWatch(_BodyWatch):
    """Watches an attempt's body before its first token, as the parser feeds it (the data
    still reaches the reader as usual): the first plain text event with text calls
    `on_token` there and then, so a race cuts its other attempts in the loop iteration the
    token arrived, not when the attempt's task next runs (which, under load, waits behind
    every callback already queued).

    Installed only where the decoder offers a spec of its plain text events (`token_spec`;
    between events, not done): from
    there, as long as everything is plain text events, comments or blank lines, the scan
    sees what the decoder will see, so a body it finds is a token the decoder will
    produce. At anything else it stops watching (the decoder's state may then differ), and
    the attempt's own task reports its token as before."""

    __slots__ = ("_carry", "_spec")

    def __init__(self, reader: StreamReader, spec: RelaySpec, on_token: Callable[[], None]) -> None:
        super().__init__(reader, on_token)
        self._spec = spec
        self._carry = b""

    def on_data(self, data: bytes) -> None:
        buf = self._carry + data if self._carry else data
        bodies, at, why = scan(self._spec, buf)
        if bodies:
            self.stop()
            self._on_token()
        elif why == INCOMPLETE:
            self._carry = buf[at:]
        elif why == NOT_UNDERSTOOD:
            self.stop()
        else:
            self._carry = b""


class ShadowWatch(_BodyWatch):
    """The token watch for a decoder without a token spec (Gemini's SSE, Ollama's NDJSON):
    a copy of the decoder, made in its current state when the reader is idle (so it has
    seen every byte the decoder has), reads the same bytes as the parser feeds them; its
    first token event is one the decoder will produce from them, thought and reasoning
    parts included. It stops at an error, or at anything the copy raises."""

    __slots__ = ("_shadow",)

    def __init__(self, reader: StreamReader, shadow: Any, on_token: Callable[[], None]) -> None:
        super().__init__(reader, on_token)
        self._shadow = shadow

    def on_data(self, data: bytes) -> None:
        try:
            events = self._shadow.feed(data)
        except Exception:  # the decoder's own task will meet it (or not): stop watching
            self.stop()
            return
        for event in events:
            if is_token(event):
                self.stop()
                self._on_token()
                return
            if type(event) is UpstreamError:
                self.stop()
                return


def watch_for_token(
    source: RelaySource, on_token: Callable[[], None], at_open: bool = False
) -> TokenWatch | ShadowWatch | None:
    """A watch on `source` for its first token: a TokenWatch if its decoder can say what a
    token looks like now (its `token_spec()`: OpenAI's is what the relay takes,
    Anthropic's a text delta; never `at_open`, where neither can yet), else a ShadowWatch
    if it can copy itself (`shadow()`), from the stream's opening on."""
    decoder = source.decoder
    token_spec = getattr(decoder, "token_spec", None)
    watch: TokenWatch | ShadowWatch
    if token_spec is not None:
        spec = None if at_open else token_spec()
        if spec is None:
            return None
        watch = TokenWatch(source.reader, spec, on_token)
    else:
        shadow = getattr(decoder, "shadow", None)
        if shadow is None:
            return None
        watch = ShadowWatch(source.reader, shadow(), on_token)
    return watch if watch_reader(source.reader, watch) else None
