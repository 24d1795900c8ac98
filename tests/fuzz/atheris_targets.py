"""Coverage-guided fuzzing (atheris, i.e. libFuzzer) of the same contracts as the hypothesis
fuzzers: every stream decoder, parse_error / parse_response, and parse_chat_request followed
by every adapter's build_request.

    python -m tests.fuzz.atheris_targets [CORPUS_DIR] -runs=200000 -max_len=4096

libFuzzer ends the process when it is done (or on the first crash, saving the input as
`crash-<sha1>`), so pytest runs this as a subprocess (test_atheris.py, a bounded run that is
skipped when atheris is not installed). The first input byte picks the target, the second
how the rest is split into chunks. `seed_corpus()` writes wire-format templates as
starting inputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["gateway"]):
    import orjson

    from gateway.config.model import LimitsConfig
    from gateway.doors.chat_parse import parse_chat_request
    from gateway.providers.base import TargetModel, UnsupportedParams
    from gateway.server.errors import ApiError
    from tests.fuzz.invariants import (
        KINDS,
        KNOWN,
        classify,
        error_violations,
        event_violations,
        provider,
        split_at,
    )
    from tests.fuzz.strategies import ERROR_BODIES, templates_for

    # The registry imports the adapter modules on first use: build them while instrumenting.
    ADAPTERS = {kind: provider(kind) for kind in KINDS}

# target byte -> (kind, surface); the last one is the request parser.
TARGETS: list[tuple[str, str]] = [
    (kind, surface) for kind in KINDS for surface in ("stream", "response", "error")
]
REQUEST_TARGET = len(TARGETS)
LIMITS = LimitsConfig(max_json_depth=32, max_messages=64)


def _check(kind: str, surface: str, found: set[str]) -> None:
    unknown = found - KNOWN.get((kind, surface), frozenset())
    if unknown:
        raise AssertionError(f"{kind} {surface}: {sorted(unknown)}")


def _stream(kind: str, chunks: list[bytes]) -> set[str]:
    decoder = ADAPTERS[kind].decoder()
    try:
        events = [ev for chunk in chunks for ev in decoder.feed(chunk)]
        events += decoder.close()
    except Exception as exc:
        return {classify(exc)}
    return event_violations(events)


def _request(raw: bytes) -> None:
    try:
        chat = parse_chat_request(raw, LIMITS)
    except ApiError as error:
        if error.status != 400 or not error.param:
            raise AssertionError(f"bad ApiError: {error.status} {error.param}") from None
        return
    for kind in KINDS:
        try:
            upstream = ADAPTERS[kind].build_request(chat, TargetModel("m"))
        except UnsupportedParams:
            continue
        orjson.loads(upstream.body)


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    target, split, rest = data[0] % (REQUEST_TARGET + 1), data[1], data[2:]
    if target == REQUEST_TARGET:
        _request(rest)
        return
    kind, surface = TARGETS[target]
    if surface == "stream":
        step = split % 17 + 1
        chunks = split_at(rest, range(0, len(rest), step)) if split else [rest]
        _check(kind, surface, _stream(kind, chunks))
        return
    adapter = ADAPTERS[kind]
    try:
        if surface == "response":
            found = event_violations(adapter.parse_response(rest))
        else:
            found = error_violations(adapter.parse_error(400 + split % 200, {}, rest))
    except Exception as exc:
        found = {classify(exc)}
    _check(kind, surface, found)


def seed_corpus(directory: Path) -> None:
    """Real-looking inputs for every target, so the fuzzer starts past the JSON syntax."""
    directory.mkdir(parents=True, exist_ok=True)
    for index, (kind, surface) in enumerate(TARGETS):
        samples = ERROR_BODIES if surface == "error" else templates_for(kind, surface)
        for n, sample in enumerate(samples):
            body = orjson.dumps(sample)
            if surface == "stream":
                body = body + b"\n" if kind == "ollama" else b"data: " + body + b"\n\n"
            (directory / f"{kind}-{surface}-{n}").write_bytes(bytes([index, 7]) + body)
    chat = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "{}"},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "stream": True,
    }
    (directory / "request").write_bytes(bytes([REQUEST_TARGET, 0]) + orjson.dumps(chat))


def main(argv: list[str]) -> None:
    if "--seed-corpus" in argv:
        seed_corpus(Path(argv[argv.index("--seed-corpus") + 1]))
        return
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
