"""Plain text chunks of OpenAI-shaped streams are re-framed without a JSON parse.

The shortcut must never change what a stream decodes to: every test compares it
with the full parse (the same decoder with the shortcut switched off).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.providers.openai_reframe import _TEXT_CHUNK, TEXT_EVENT, TextChunkShortcut
from gateway.providers.openai_stream import OpenAIStreamDecoder
from gateway.providers.quirks import BUILTIN_QUIRKS
from gateway.streaming.encode import ChunkEncoder
from gateway.streaming.events import Event, Finish, TextDelta, ToolCallDelta, Usage

QUIRKS = BUILTIN_QUIRKS["openai"]
BASE = {
    "id": "chatcmpl-abc",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "system_fingerprint": "fp_1",
}


class _NoShortcut(TextChunkShortcut):
    def match(self, data: str) -> TextDelta | bool:
        return False


def _full_parse() -> OpenAIStreamDecoder:
    decoder = OpenAIStreamDecoder(QUIRKS)
    decoder._shortcut = _NoShortcut()
    return decoder


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {**BASE, "choices": [choice], **extra}


def sse(*chunks: dict[str, Any] | bytes) -> bytes:
    out = b""
    for item in chunks:
        out += b"data: " + (item if isinstance(item, bytes) else orjson.dumps(item)) + b"\n\n"
    return out


def decode(decoder: OpenAIStreamDecoder, body: bytes, pieces: int = 1) -> list[Event]:
    step = max(1, len(body) // pieces)
    events: list[Event] = []
    for i in range(0, len(body), step):
        events += decoder.feed(body[i : i + step])
    return events + decoder.close()


def text_stream(texts: list[str], **extra: Any) -> bytes:
    return sse(
        chunk({"role": "assistant", "content": "", "refusal": None}),
        *(chunk({"content": text}, **extra) for text in texts),
        chunk({}, "stop"),
        b"[DONE]",
    )


def test_plain_text_chunks_take_the_shortcut_and_decode_alike() -> None:
    body = text_stream(["Hello", ", ", 'say "hi"\\n', "caf\u00e9 \u2603", ""], obfuscation="Zx1_")
    fast = decode(OpenAIStreamDecoder(QUIRKS), body)
    assert fast == decode(_full_parse(), body)
    texts = [e for e in fast if type(e) is TextDelta]
    assert [t.text for t in texts] == ["Hello", ", ", 'say "hi"\\n', "caf\u00e9 \u2603"]
    # the role chunk teaches the head: even the first token is cut out as an escaped body
    assert [t.raw for t in texts] == ["Hello", ", ", 'say \\"hi\\"\\\\n', "caf\u00e9 \u2603"]
    assert fast[-1] == Finish("stop")


def test_same_head_but_more_than_text_falls_back_to_the_full_parse() -> None:
    head_chunk = chunk({"content": "a"})
    with_refusal = chunk({"content": "b", "refusal": "no"})
    with_usage = chunk({"content": "c"}, usage={"prompt_tokens": 3, "completion_tokens": 2})
    with_finish = chunk({"content": "d"}, "length")
    tool = chunk({"tool_calls": [{"index": 0, "id": "t1", "function": {"name": "f"}}]})
    body = sse(head_chunk, with_refusal, with_usage, with_finish, tool, b"[DONE]")
    fast = decode(OpenAIStreamDecoder(QUIRKS), body)
    assert fast == decode(_full_parse(), body)
    assert TextDelta("no") in fast
    assert Usage(prompt=3, completion=2) in fast
    assert Finish("length") in fast
    assert any(type(e) is ToolCallDelta for e in fast)


def test_a_head_cut_at_the_wrong_delta_teaches_nothing() -> None:
    """A top-level `delta` object before the choices is not the choice's delta: the head
    is only learned when it closes into a valid chunk, so a broken chunk that happens to
    start with that text is still refused."""
    first = orjson.dumps({"delta": {"k": 1}, **chunk({"content": "a"})})
    broken = b'{"delta":{"content":"b"},"finish_reason":null}]}'
    body = sse(first, broken, b"[DONE]")
    fast = decode(OpenAIStreamDecoder(QUIRKS), body)
    assert fast == decode(_full_parse(), body)
    assert fast[-1].type == "upstream_protocol_error"  # type: ignore[union-attr]


def test_a_stream_whose_head_never_closes_stops_probing() -> None:
    shortcut = TextChunkShortcut()
    odd = {"delta": {"k": 1}, **chunk({"content": "a"})}
    data = orjson.dumps(odd).decode()
    for _ in range(10):
        shortcut.learn(data, odd, [TextDelta("a")])
    assert shortcut._probes_left == 0
    assert shortcut.match(data) is False


def test_a_first_chunk_with_usage_or_a_finish_teaches_nothing() -> None:
    for first in (
        chunk({"content": "a"}, usage={"prompt_tokens": 1, "completion_tokens": 1}),
        chunk({"content": "a"}, "stop"),
    ):
        body = sse(first, chunk({"content": "b"}), b"[DONE]")
        events = decode(OpenAIStreamDecoder(QUIRKS), body)
        assert events == decode(_full_parse(), body)
        assert [e.raw for e in events if type(e) is TextDelta] == [None, None]


def test_a_different_head_is_parsed_in_full() -> None:
    first = chunk({"content": "a"})
    renamed = {**chunk({"content": "b"}), "model": "other-model"}
    body = sse(first, renamed, b"[DONE]")
    events = decode(OpenAIStreamDecoder(QUIRKS), body)
    assert events == decode(_full_parse(), body)
    assert [e.raw for e in events if type(e) is TextDelta] == [None, None]


def test_invalid_escape_in_a_shortcut_chunk_is_a_protocol_error_as_in_the_full_parse() -> None:
    good = orjson.dumps(chunk({"content": "a"}))
    bad = good.replace(b'"content":"a"', b'"content":"\\q"')
    body = sse(good, bad, b"[DONE]")
    fast = decode(OpenAIStreamDecoder(QUIRKS), body)
    assert fast == decode(_full_parse(), body)
    assert fast[-1].type == "upstream_protocol_error"  # type: ignore[union-attr]


def test_the_encoder_frames_raw_bodies_as_they_are() -> None:
    encoder = ChunkEncoder("chatcmpl-x", 1, "alias", include_usage=False)
    events: list[Event] = [
        TextDelta('a "q"', 'a \\"q\\"'),
        TextDelta("\u00e9", "\\u00e9"),
        TextDelta("plain"),
    ]
    out = encoder.encode(events[:2]) + encoder.encode(events)
    chunks = [orjson.loads(line[6:]) for line in out.split(b"\n\n") if line.startswith(b"data: {")]
    contents = [c["choices"][0]["delta"].get("content") for c in chunks]
    assert contents == ["", 'a "q"\u00e9', 'a "q"\u00e9plain']
    assert all(c["model"] == "alias" for c in chunks)


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12
) | st.sampled_from(['"', "\\", "\\n", "\n", "\t", "\x00", "\u2028", "</s>", ""])
_CHUNK = st.one_of(
    _TEXT.map(lambda t: chunk({"content": t})),
    _TEXT.map(lambda t: chunk({"content": t}, obfuscation="ab")),
    _TEXT.map(lambda t: chunk({"role": "assistant", "content": t})),
    _TEXT.map(lambda t: chunk({"content": t, "refusal": t})),
    _TEXT.map(lambda t: chunk({"reasoning_content": t})),
    _TEXT.map(lambda t: chunk({"content": t}, "stop")),
    _TEXT.map(lambda t: chunk({"content": t}, usage={"prompt_tokens": 1, "completion_tokens": 2})),
    _TEXT.map(lambda t: {**chunk({"content": t}), "model": "m2"}),
    st.just({**BASE, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_CHUNK, max_size=8), st.integers(1, 7), st.booleans())
def test_shortcut_decodes_exactly_like_the_full_parse(
    chunks: list[dict[str, Any]], pieces: int, escape_unicode: bool
) -> None:
    def dumps(value: dict[str, Any]) -> bytes:
        if escape_unicode:  # servers that escape non-ASCII (json.dumps default)
            import json

            return json.dumps(value, separators=(",", ":")).encode()
        return orjson.dumps(value)

    body = sse(*(dumps(c) for c in chunks), b"[DONE]")
    fast = decode(OpenAIStreamDecoder(QUIRKS), body, pieces)
    assert fast == decode(_full_parse(), body, pieces)
    encoder = ChunkEncoder("chatcmpl-x", 1, "alias", include_usage=True)
    out = encoder.encode(fast) + encoder.end()
    sent = [orjson.loads(line[6:]) for line in out.split(b"\n\n") if line.startswith(b"data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in sent if c.get("choices"))
    assert text == "".join(e.text for e in fast if type(e) is TextDelta)


# The text body as the shortcut first matched it: one character or one escape at a time.
_BODY_BY_CHARACTER = re.compile(r'(?:[^"\\\x00-\x1f]|\\.)*')
_BODY = re.compile(_TEXT_CHUNK.pattern.split('"content":"(', 1)[1].split(')"', 1)[0])


@given(st.text(alphabet=st.sampled_from(["a", " ", "é", '"', "\\", "\n", "\x01", "u", "0"])))
def test_the_unrolled_body_pattern_takes_the_same_strings(text: str) -> None:
    assert bool(_BODY.fullmatch(text)) == bool(_BODY_BY_CHARACTER.fullmatch(text))
    encoded = text.encode()
    by_character = re.compile(_BODY_BY_CHARACTER.pattern.encode())
    unrolled = re.compile(TEXT_EVENT.pattern.split(b'"content":"(', 1)[1].split(b')"', 1)[0])
    assert bool(unrolled.fullmatch(encoded)) == bool(by_character.fullmatch(encoded))
