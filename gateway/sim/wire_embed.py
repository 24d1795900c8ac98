"""Embeddings on the wire of each simulated provider: parse the request like the real
service, render the answer as it does. Pure: no sockets, no sleeping, no clock.

- OpenAI `POST /v1/embeddings`: `input` string | strings | token array | token arrays,
  `encoding_format` float | base64 (little-endian float32), `dimensions`; usage.
- Gemini `POST /v1beta/models/{model}:batchEmbedContents`: `requests[]` of
  `{model, content: {parts: [{text}]}, outputDimensionality}`; no usage.
- Ollama `POST /api/embed`: `input` string | strings, `dimensions`; `prompt_eval_count`.

Vectors are deterministic per input: seeded by a hash of its text (or its token ids),
unit-normalised, rounded to float32 as real services send them.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import sys
from array import array
from functools import lru_cache
from typing import Any

from gateway.sim.wire import dumps, load_object
from gateway.value_class import value_class

MAX_INPUTS = {"openai": 2048, "gemini": 100, "ollama": 100_000}


@value_class
class EmbedWireRequest:
    model: str
    keys: tuple[str, ...]  # what each vector is seeded by: the text, or its token ids
    tokens: tuple[int, ...]  # prompt tokens of each input
    dimensions: int | None = None
    base64: bool = False  # OpenAI encoding_format


@lru_cache(maxsize=4096)  # callers never mutate the list
def vector(key: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on `key` and `dimensions`, in float32 precision."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    rng = random.Random(int.from_bytes(digest, "little"))
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array("f", [v / norm for v in values]).tolist()


def _text_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def parse_openai(body: bytes) -> EmbedWireRequest | tuple[str, str | None]:
    """The request, or (message, param) of OpenAI's 400."""
    obj = load_object(body)
    if obj is None:
        return "We could not parse the JSON body of your request.", None
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        return "you must provide a model parameter", None
    raw = obj.get("input")
    items: list[Any]
    if isinstance(raw, str):
        items = [raw]
    elif isinstance(raw, list) and raw and all(_is_token(t) for t in raw):
        items = [raw]
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        return "'$.input' is invalid. Please check the API reference.", "input"
    if len(items) > MAX_INPUTS["openai"]:
        return f"'$.input' is too long: at most {MAX_INPUTS['openai']} inputs.", "input"
    keys: list[str] = []
    tokens: list[int] = []
    for item in items:
        if isinstance(item, str) and item:
            keys.append(item)
            tokens.append(_text_tokens(item))
        elif isinstance(item, list) and item and all(_is_token(t) for t in item):
            keys.append("tokens:" + ",".join(map(str, item)))
            tokens.append(len(item))
        else:
            return "'$.input' is invalid. Please check the API reference.", "input"
    encoding = obj.get("encoding_format", "float")
    if encoding not in ("float", "base64", None):
        return f"Invalid value for 'encoding_format': {encoding!r}.", "encoding_format"
    dims = obj.get("dimensions")
    if dims is not None and not _positive(dims):
        return "Invalid 'dimensions': must be a positive integer.", "dimensions"
    return EmbedWireRequest(model, tuple(keys), tuple(tokens), dims, encoding == "base64")


def parse_gemini(body: bytes, target: str) -> EmbedWireRequest | tuple[str, str | None]:
    url_model = target.rpartition(":")[0].removeprefix("models/")
    obj = load_object(body)
    if obj is None:
        return "Invalid JSON payload received. Unexpected token.", None
    requests = obj.get("requests")
    if not isinstance(requests, list) or not requests:
        return "* BatchEmbedContentsRequest.requests: requests is not specified\n", None
    if len(requests) > MAX_INPUTS["gemini"]:
        return (
            "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n",
            None,
        )
    keys: list[str] = []
    tokens: list[int] = []
    dims: set[Any] = set()
    for i, item in enumerate(requests):
        where = f"* BatchEmbedContentsRequest.requests[{i}]"
        if not isinstance(item, dict) or item.get("model") != f"models/{url_model}":
            return f"{where}.model: model must match the model in the URL\n", None
        content = item.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        texts = [p.get("text") for p in parts or () if isinstance(p, dict)]
        if not texts or not all(isinstance(t, str) for t in texts):
            return f"{where}.content: content is not specified\n", None
        text = "".join(t for t in texts if isinstance(t, str))
        keys.append(text)
        tokens.append(_text_tokens(text))
        dims.add(item.get("outputDimensionality"))
    if len(dims) > 1:
        return "* outputDimensionality must be the same in every request of a batch\n", None
    dim = dims.pop()
    if dim is not None and not _positive(dim):
        return "* outputDimensionality must be positive\n", None
    return EmbedWireRequest(url_model, tuple(keys), tuple(tokens), dim)


def parse_ollama(body: bytes) -> EmbedWireRequest | tuple[str, str | None]:
    obj = load_object(body)
    if obj is None:
        return "invalid character in request body", None
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        return "model is required", None
    raw = obj.get("input")
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(t, str) for t in items):
        return "invalid input type", None
    dims = obj.get("dimensions")
    if dims is not None and not _positive(dims):
        return "dimensions must be a positive integer", None
    return EmbedWireRequest(model, tuple(items), tuple(_text_tokens(t) for t in items), dims)


def render_openai(req: EmbedWireRequest, vectors: list[list[float]], model: str) -> bytes:
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _base64(vec) if req.base64 else vec,
        }
        for i, vec in enumerate(vectors)
    ]
    prompt = sum(req.tokens)
    usage = {"prompt_tokens": prompt, "total_tokens": prompt}
    return dumps({"object": "list", "data": data, "model": model, "usage": usage})


def render_gemini(vectors: list[list[float]]) -> bytes:
    return dumps({"embeddings": [{"values": vec} for vec in vectors]})


def render_ollama(req: EmbedWireRequest, vectors: list[list[float]], model: str) -> bytes:
    return dumps(
        {
            "model": model,
            "embeddings": vectors,
            "total_duration": 14143917,
            "load_duration": 1019500,
            "prompt_eval_count": sum(req.tokens),
        }
    )


def _base64(vec: list[float]) -> str:
    floats = array("f", vec)
    if sys.byteorder == "big":
        floats.byteswap()
    return base64.b64encode(floats.tobytes()).decode("ascii")


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
