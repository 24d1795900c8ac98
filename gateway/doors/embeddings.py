"""The OpenAI embeddings door (`POST /v1/embeddings`): request body -> EmbedRequest, the
winner's events -> the OpenAI embeddings list object, errors in the OpenAI envelope.

`input` is a string, a list of strings, a token array (list of integers) or a list of
token arrays, as the OpenAI API takes it; anything else, an empty input or an empty
string among the inputs, is a 400 naming the field. `encoding_format: base64` answers
each vector as the base64 of its little-endian float32 bytes, which is what OpenAI sends
and what the official SDKs decode (the Python SDK asks for base64 unless told otherwise).
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.config.model import LimitsConfig
from gateway.rejection import Rejected
from gateway.request import EmbedRequest, EncodingFormat
from gateway.streaming.events import Embeddings, Event, UpstreamError, Usage

MAX_MODEL_CHARS = 256  # a route or deployment name; echoed in errors and logs
MAX_INPUT_CHARS = 1_000_000  # per text input (as the chat door's per-message bound)
MAX_INPUT_TOKENS = 250_000  # per token-array input
MAX_TOKEN_ID = 2**31 - 1
MAX_DIMENSIONS = 16_384  # no embedding model comes near; bounds the simulators' vectors too
SAFE_JSON_DEPTH = 200  # forwarded extra fields are re-serialized (orjson writes 254 levels)
_OWN_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
_CONTAINERS = (dict, list)
_SWAP = sys.byteorder == "big"  # the wire format is little-endian float32


def _bad(message: str, param: str, code: str | None = None) -> Rejected:
    return Rejected(400, message, "invalid_request_error", code, param)


def parse_embeddings_request(
    raw: bytes, headers: Mapping[str, str], limits: LimitsConfig
) -> EmbedRequest:
    """A validated EmbedRequest, or Rejected (400) naming the field at fault."""
    if not raw.strip():
        raise _bad("request body is empty; expected a JSON object", "body", "invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"request body is not valid JSON: {exc}", "body", "invalid_json") from None
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object", "body", "invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required and must be a non-empty string", "model")
    if len(model) > MAX_MODEL_CHARS:
        raise _bad(f"'model' is longer than {MAX_MODEL_CHARS} characters", "model")
    inputs = _inputs(body.get("input"), "input" in body, limits.max_embedding_inputs)
    encoding: EncodingFormat = "float"
    if body.get("encoding_format") == "base64":
        encoding = "base64"
    elif body.get("encoding_format") not in (None, "float"):
        raise _bad("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= MAX_DIMENSIONS
    ):
        raise _bad(f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}", "dimensions")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _bad("'user' must be a string", "user")
    extra = {key: value for key, value in body.items() if key not in _OWN_FIELDS}
    depth = max(1, min(limits.max_json_depth, SAFE_JSON_DEPTH))
    for key, value in extra.items():
        if _deeper_than(value, depth - 1):
            raise _bad(
                f"'{key}' is nested deeper than the limit of {depth} JSON levels",
                key,
                "json_too_deep",
            )
    return EmbedRequest(model, inputs, encoding, dimensions, user, extra)


def _inputs(value: Any, present: bool, max_inputs: int) -> list[str] | list[list[int]]:
    if value is None:
        what = "is required" if not present else "must not be null"
        raise _bad(
            f"'input' {what}: a string, an array of strings, or an array of token arrays",
            "input",
        )
    if isinstance(value, str):
        _check_text(value, "input")
        return [value]
    if not isinstance(value, list):
        raise _bad(
            "'input' must be a string, an array of strings, an array of integers (tokens) "
            "or an array of token arrays",
            "input",
        )
    if not value:
        raise _bad("'input' must not be an empty array", "input")
    first = value[0]
    if isinstance(first, int) and not isinstance(first, bool):
        _check_tokens(value, "input")  # one token array
        return [value]
    if len(value) > max_inputs:
        raise _bad(
            f"'input' has {len(value)} entries; the limit is {max_inputs} per request",
            "input",
            "array_above_max_length",
        )
    if isinstance(first, str):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _bad(
                    f"'input[{i}]' must be a string, like every other entry of 'input'",
                    f"input[{i}]",
                )
            _check_text(item, f"input[{i}]")
        return value
    for i, item in enumerate(value):
        if not isinstance(item, list):
            raise _bad(
                f"'input[{i}]' must be an array of integers (tokens), like 'input[0]'"
                if i
                else "'input[0]' must be a string, an integer (token) or an array of tokens",
                f"input[{i}]",
            )
        _check_tokens(item, f"input[{i}]")
    return value


def _check_text(text: str, where: str) -> None:
    if not text:
        raise _bad(f"'{where}' must not be an empty string", where)
    if len(text) > MAX_INPUT_CHARS:
        raise _bad(
            f"'{where}' is too long: {len(text)} characters, the limit is {MAX_INPUT_CHARS}",
            where,
            "string_above_max_length",
        )


def _check_tokens(tokens: list[Any], where: str) -> None:
    if not tokens:
        raise _bad(f"'{where}' must not be an empty token array", where)
    if len(tokens) > MAX_INPUT_TOKENS:
        raise _bad(
            f"'{where}' has {len(tokens)} tokens, the limit is {MAX_INPUT_TOKENS}",
            where,
            "array_above_max_length",
        )
    # At C speed first (a body may hold millions of tokens); find the culprit only then.
    if set(map(type, tokens)) == {int} and 0 <= min(tokens) and max(tokens) <= MAX_TOKEN_ID:
        return
    for j, token in enumerate(tokens):
        if token.__class__ is not int or not 0 <= token <= MAX_TOKEN_ID:
            raise _bad(
                f"'{where}[{j}]' must be a token id: an integer from 0 to {MAX_TOKEN_ID}",
                f"{where}[{j}]",
            )


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit` (iteratively: no input can exhaust the
    stack)."""
    level = [value] if value.__class__ in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            children = node.values() if node.__class__ is dict else node
            below.extend(child for child in children if child.__class__ in _CONTAINERS)
        level = below
    return False


def encode_vector(vector: list[float]) -> str:
    """A vector as OpenAI's base64: the little-endian float32 bytes, base64-encoded."""
    floats = array("f", vector)
    if _SWAP:
        floats.byteswap()
    return base64.b64encode(floats.tobytes()).decode("ascii")


class EmbeddingsAssembler:
    """The winner's events -> the OpenAI embeddings list object (`build()`); `error` is set
    when the events carried an upstream error instead."""

    __slots__ = ("_encoding", "_model", "_usage", "_vectors", "error")

    def __init__(self, model: str, encoding_format: EncodingFormat = "float") -> None:
        self._model = model
        self._encoding = encoding_format
        self._vectors: list[list[float]] = []
        self._usage = Usage()
        self.error: UpstreamError | None = None

    def add(self, events: list[Event]) -> None:
        for event in events:
            if type(event) is Embeddings:
                self._vectors.extend(event.vectors)
            elif type(event) is Usage:
                self._usage = event
            elif type(event) is UpstreamError and self.error is None:
                self.error = event

    def build(self) -> dict[str, Any]:
        encode = encode_vector if self._encoding == "base64" else None
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": encode(vector) if encode is not None else vector,
            }
            for i, vector in enumerate(self._vectors)
        ]
        prompt = self._usage.prompt
        return {
            "object": "list",
            "data": data,
            "model": self._model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }


def error_body(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """The OpenAI error envelope (the status travels on the HTTP response)."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
