"""The race's token watch for Gemini and Ollama streams (`relay.ShadowWatch`): a copy of
the decoder, made wherever the watch starts, claims a first token in exactly the read in
which the decoder itself first produces one, however the stream is split; it never claims
after an error."""

from __future__ import annotations

import itertools

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.providers.gemini_stream import GeminiStreamDecoder
from gateway.providers.ollama_stream import OllamaStreamDecoder
from gateway.streaming.events import is_token
from gateway.streaming.relay import ShadowWatch


def ollama_line(content: str = "", thinking: str = "", done: bool = False) -> bytes:
    message = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    line = {"model": "m", "created_at": "2026-12-06T00:00:00Z", "message": message, "done": done}
    return orjson.dumps(line) + b"\n"


def gemini_event(text: str = "", thought: bool = False, eol: bytes = b"\r\n") -> bytes:
    parts = [{"text": text, "thought": True} if thought else {"text": text}] if text else []
    chunk = {"candidates": [{"content": {"parts": parts, "role": "model"}}]}
    return b"data: " + orjson.dumps(chunk) + eol + eol


LINES = st.lists(st.sampled_from(["empty", "text", "thinking", "error"]), min_size=1, max_size=6)


def ollama_stream(kinds: list[str]) -> bytes:
    out = b""
    for kind in kinds:
        if kind == "empty":
            out += ollama_line()
        elif kind == "text":
            out += ollama_line(content="hi")
        elif kind == "thinking":
            out += ollama_line(thinking="hmm")
        else:
            out += b'{"error":"model failed"}\n'
    return out + ollama_line(done=True)


def gemini_stream(kinds: list[str], eol: bytes) -> bytes:
    out = b""
    for kind in kinds:
        if kind == "empty":
            out += gemini_event(eol=eol)
        elif kind == "text":
            out += gemini_event("hi", eol=eol)
        elif kind == "thinking":
            out += gemini_event("hmm", thought=True, eol=eol)
        else:
            out += b'data: {"error": {"code": 500, "message": "failed"}}' + eol + eol
    return out


def reads(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def first_token_read(decoder: object, pieces: list[bytes]) -> int | None:
    for i, piece in enumerate(pieces):
        if any(is_token(event) for event in decoder.feed(piece)):  # type: ignore[attr-defined]
            return i
    return None


def watched(decoder: object, pieces: list[bytes]) -> int | None:
    claimed: list[int] = []
    at = [0]
    watch = ShadowWatch(object(), decoder.shadow(), lambda: claimed.append(at[0]))  # type: ignore[arg-type, attr-defined]
    for i, piece in enumerate(pieces):
        at[0] = i
        watch.on_data(piece)
        if claimed:
            break
    return claimed[0] if claimed else None


@settings(max_examples=200, deadline=None)
@given(
    kinds=LINES,
    cuts=st.lists(st.integers(min_value=0), max_size=10),
    start=st.integers(min_value=0, max_value=10),
    gemini=st.booleans(),
    crlf=st.booleans(),
)
def test_the_shadow_claims_in_the_read_the_decoder_first_yields_a_token(
    kinds: list[str], cuts: list[int], start: int, gemini: bool, crlf: bool
) -> None:
    if gemini:
        data = gemini_stream(kinds, b"\r\n" if crlf else b"\n")
        make = lambda: GeminiStreamDecoder(secret="k")  # noqa: E731
    else:
        data = ollama_stream(kinds)
        make = lambda: OllamaStreamDecoder(secret="k")  # noqa: E731
    pieces = reads(data, cuts)
    start = min(start, len(pieces))
    # the decoder has read `start` pieces when the watch starts (tokenless ones only: a
    # race watches an attempt only until its first token)
    decoder, expected = make(), make()
    before = first_token_read(expected, pieces[:start])
    if before is not None:
        return
    for piece in pieces[:start]:
        decoder.feed(piece)
    rest = pieces[start:]
    assert watched(decoder, rest) == first_token_read(expected, rest)
