"""The fast relay is the general path, faster: property tests over random streams.

A random OpenAI-shaped stream (plain text chunks with any text, empty ones, keep-alive
comments, blank lines, and at random places things the relay does not understand: tool
calls, reasoning, another head, CRLF endings, `data:` without its space, event names,
invalid UTF-8, invalid escapes, errors), cut into random reads, goes two ways:

- general: every read through the decoder and the chat encoder;
- relay: after the first write (as in `server/answering.py`), whenever the decoder offers
  a `RelaySpec`, reads go through `relay.scan` and `TextFrame` until it stops; the rest
  goes back to the decoder (what `Relay.on_data` does), and at the end what the relay
  held goes to the decoder before its close (what `Relay.on_end` does).

The client must read the same answer both ways: the same chunks, text runs joined (the
relay may split a run the general path would have sent as one chunk, never anything
else), and the same number of tokens accounted.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.model import LimitsConfig
from gateway.doors.messages_encode import MessagesStreamEncoder
from gateway.doors.responses_encode import ResponsesStreamEncoder
from gateway.doors.responses_parse import parse_responses_request
from gateway.providers.openai_stream import OpenAIStreamDecoder
from gateway.providers.quirks import BUILTIN_QUIRKS
from gateway.streaming.encode import ChunkEncoder
from gateway.streaming.events import Event, TextDelta, UpstreamError, is_token
from gateway.streaming.relay import ALL, INCOMPLETE, scan, valid_body

QUIRKS = BUILTIN_QUIRKS["openai"]
HEAD = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 7, "model": "m"}


def event(chunk: dict[str, Any] | bytes) -> bytes:
    return b"data: " + (chunk if isinstance(chunk, bytes) else orjson.dumps(chunk)) + b"\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None, **top: Any) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return event({**HEAD, **top, "choices": [choice]})


def raw_text_chunk(body: bytes) -> bytes:
    """A plain text chunk whose content is `body` as sent (it may be invalid)."""
    before, after = chunk({"content": "X"}).split(b'"X"')
    return before + b'"' + body + b'"' + after


texts = st.text(max_size=12)
plain = texts.map(lambda t: chunk({"content": t}))
odd = st.sampled_from(
    [
        chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f"}}]}),
        chunk({"reasoning_content": "hmm"}),
        chunk({"content": "fp"}, system_fingerprint="fp_2"),
        chunk({"content": "crlf"}).replace(b"\n\n", b"\r\n\r\n"),
        chunk({"content": "nospace"}).replace(b"data: ", b"data:"),
        b"event: message\n" + chunk({"content": "named"}),
        raw_text_chunk(b"bad \xff utf8"),
        raw_text_chunk(b"bad \\x escape"),
        raw_text_chunk(b"lone \\ud800 surrogate"),
        b":a comment, then a CR\r" + chunk({"content": "after a CR"}),
        event({"error": {"message": "boom", "type": "server_error"}}),
    ]
)
quiet = st.sampled_from([b": keep-alive\n\n", b"\n", chunk({"content": ""})])
items = st.lists(st.one_of(plain, plain, plain, quiet, odd), max_size=25)
ends = st.sampled_from(
    [
        chunk({}, "stop")
        + event({**HEAD, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
        + b"data: [DONE]\n\n",
        chunk({}, "length") + b"data: [DONE]\n\n",
        b"",  # cut: no finish, no [DONE]
        b'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":7,"mod',
    ]
)


def pieces_of(parts: list[bytes], joins: list[bool], cuts: list[int]) -> list[bytes]:
    """The reads: mostly one upstream event each (as streams arrive), some events read
    together (`joins`), and some reads cut anywhere (`cuts`, offsets into the body)."""
    body = b"".join(parts)
    points = {0, len(body)}
    at = 0
    for i, part in enumerate(parts):
        at += len(part)
        if not (joins[i] if i < len(joins) else False):
            points.add(at)
    points |= {c % (len(body) + 1) for c in cuts}
    ordered = sorted(points)
    return [body[a:b] for a, b in itertools.pairwise(ordered) if b > a]


def tokens_in(events: list[Event]) -> int:
    return sum(1 for e in events if (type(e) is not TextDelta or e.text) and is_token(e))


def responses_context() -> Any:
    body = orjson.dumps({"model": "route", "input": "hi"})
    return parse_responses_request(body, {}, LimitsConfig())[1]


ENCODERS: dict[str, Callable[[], Any]] = {
    "chat": lambda: ChunkEncoder("chatcmpl-out", 1, "route", include_usage=True),
    "messages": lambda: MessagesStreamEncoder("msg_out", 1, "route"),
    "responses": lambda: ResponsesStreamEncoder("resp_out", 1, "route", responses_context()),
}


def stream(door: str, pieces: list[bytes], relay: bool) -> tuple[bytes, int, int]:
    """What `stream_answer` writes for these reads, the tokens accounted, and how many of
    them the relay forwarded (`relay`: take it whenever the decoder and encoder allow)."""
    decoder = OpenAIStreamDecoder(QUIRKS)
    encoder = ENCODERS[door]()
    out, tokens, by_relay = [], 0, 0
    written = False  # the relay starts after the answer's first write
    spec = frame = None
    carry = b""
    failed = False
    for piece in pieces:
        data = piece
        if relay and spec is None and written and not failed:
            spec, frame = decoder.relay_spec(), encoder.text_frame()
            if spec is None or frame is None:
                spec = frame = None
        if spec is not None and frame is not None:
            buf = carry + data
            carry = b""
            bodies, at, why = scan(spec, buf)
            if bodies:
                out.append(frame.frame(bodies))
                tokens += len(bodies)
                by_relay += len(bodies)
            if why == ALL:
                continue
            if why == INCOMPLETE:
                carry = buf[at:]
                # what it holds back is never a finished line: a stream it does not
                # understand must not stall behind it
                assert b"\r" not in carry and b"\n" not in carry[:-1], carry
                continue
            spec = frame = None
            data = buf[at:]
        events = decoder.feed(data)
        if events and not failed:
            out.append(encoder.encode(events))
            written = True
            tokens += tokens_in(events)
            failed = any(type(e) is UpstreamError for e in events)
    events = decoder.feed(carry) + decoder.close() if carry else decoder.close()
    if events and not failed:
        out.append(encoder.encode(events))
        tokens += tokens_in(events)
        failed = any(type(e) is UpstreamError for e in events)
    if not failed:
        out.append(encoder.end())
    return b"".join(out), tokens, by_relay


def sse_events(raw: bytes) -> list[tuple[str, Any]]:
    """(event name, data) of every SSE event, checking the framing on the way."""
    out = []
    for part in raw.split(b"\n\n"):
        if not part:
            continue
        name, data = "", b""
        for line in part.split(b"\n"):
            field, _, value = line.partition(b": ")
            assert field in (b"event", b"data"), part
            if field == b"event":
                name = value.decode()
            else:
                assert not data, "one data line per event"
                data = value
        out.append((name, "[DONE]" if data == b"[DONE]" else orjson.loads(data)))
    return out


def answer(door: str, raw: bytes) -> list[Any]:
    """What a client makes of the bytes: events, with runs of text deltas joined (the relay
    may split a run the general path sends as one event, never anything else)."""
    seen: list[Any] = []
    sequence = 0
    for name, body in sse_events(raw):
        text = None
        if door == "chat" and isinstance(body, dict):
            choices = body.get("choices")
            if (
                choices
                and set(choices[0]["delta"]) == {"content"}
                and choices[0]["finish_reason"] is None
            ):
                text = "0:" + choices[0]["delta"]["content"]
        elif door == "messages":
            if body["type"] == "content_block_delta" and body["delta"]["type"] == "text_delta":
                text = f"{body['index']}:" + body["delta"]["text"]
        elif door == "responses":
            assert body.pop("sequence_number") == sequence  # one numbering, in order
            sequence += 1
            if name == "response.output_text.delta":
                text = body["item_id"] + ":" + body["delta"]
        if text is None:
            seen.append((name, body))
        elif seen and isinstance(seen[-1], str) and seen[-1].split(":")[0] == text.split(":")[0]:
            seen[-1] += text.split(":", 1)[1]
        else:
            seen.append(text)
    return seen


@settings(max_examples=300, deadline=None)
@given(
    door=st.sampled_from(sorted(ENCODERS)),
    first=texts.filter(bool),
    middle=items,
    end=ends,
    joins=st.lists(st.booleans(), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6),
)
def test_the_relay_answers_what_the_general_path_answers(
    door: str, first: str, middle: list[bytes], end: bytes, joins: list[bool], cuts: list[int]
) -> None:
    start = chunk({"role": "assistant", "content": ""}) + chunk({"content": first})
    pieces = pieces_of([start, *middle, end], joins, cuts)
    expected, expected_tokens, _ = stream(door, pieces, relay=False)
    got, tokens, _ = stream(door, pieces, relay=True)
    assert answer(door, got) == answer(door, expected)
    assert tokens == expected_tokens


@settings(max_examples=100, deadline=None)
@given(
    door=st.sampled_from(sorted(ENCODERS)),
    words=st.lists(texts.filter(bool), min_size=1, max_size=20),
)
def test_a_plain_answer_read_a_chunk_at_a_time_is_relayed_byte_for_byte(
    door: str, words: list[str]
) -> None:
    """The usual stream, one upstream chunk per read: every text chunk after the first
    goes through the relay, and the bytes are exactly the general path's."""
    start = chunk({"role": "assistant", "content": ""}) + chunk({"content": words[0]})
    pieces = [start, *(chunk({"content": w}) for w in words[1:]), chunk({}, "stop")]
    pieces.append(b"data: [DONE]\n\n")
    expected, _, _ = stream(door, pieces, relay=False)
    got, tokens, by_relay = stream(door, pieces, relay=True)
    assert got == expected
    assert by_relay == len(words) - 1 and tokens == len(words)


def test_valid_body_is_the_decoders_json_string_rule() -> None:
    assert valid_body(b"plain") and valid_body("wörld".encode()) and valid_body(b'q\\"\\n')
    assert valid_body(b"\\ud83d\\ude00")  # a surrogate pair
    assert not valid_body(b"\xff") and not valid_body(b"\\x") and not valid_body(b"\\ud800")
