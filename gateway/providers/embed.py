"""Embeddings: what every adapter shares. Pure: no I/O.

An embeddings request is split into the provider's batch size (`batches`); each batch is
one plain upstream call; each answer is read into an `EmbedPart`; the parts are joined in
request order (`one_shot_call`) into one `Embeddings` event and one `Usage`, so the engine
routes, falls back and accounts an embeddings answer like any other.
"""

from __future__ import annotations

import base64
import binascii
import math
import sys
from array import array
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from gateway.providers.base import OneShotCall, TargetModel, UnsupportedParams, UpstreamRequest
from gateway.providers.common import protocol_error
from gateway.request import EmbedRequest, estimate_input_tokens
from gateway.streaming.events import Embeddings, Event, ResponseMeta, UpstreamError, Usage
from gateway.value_class import value_class

_SWAP = sys.byteorder == "big"  # base64 vectors are little-endian float32
FLOAT32_MAX = 3.4028234663852886e38


@value_class
class EmbedPart:
    """One upstream answer: its vectors in input order, and what it says it used."""

    vectors: list[list[float]]
    prompt_tokens: int | None = None  # None: the upstream reports no usage
    model: str | None = None


def batches(count: int, size: int) -> list[range]:
    """Positions of `count` inputs cut into runs of at most `size`, in order."""
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def batch_size(target: TargetModel, default: int) -> int:
    """The deployment's `batch_size`, else the adapter's default."""
    return target.batch_size if target.batch_size is not None else default


def texts_of(request: EmbedRequest, provider: str) -> list[str]:
    """The inputs as texts, for upstreams that take no token arrays (not droppable)."""
    if request.tokenized:
        raise UnsupportedParams(["input (token arrays; send text)"], provider)
    return request.texts()


def checked_vector(value: Any) -> list[float] | None:
    """A non-empty JSON array of numbers that fit a float32 (what clients decode), or None.
    The check runs at C speed: a batch may hold millions of numbers."""
    if not isinstance(value, list) or not value:
        return None
    try:
        array("f", value)  # numbers only (array stores a too-large one as inf, so:)
    except (TypeError, OverflowError):
        return None
    return value if -FLOAT32_MAX <= min(value) and max(value) <= FLOAT32_MAX else None


def decoded_vector(text: str) -> list[float] | None:
    """An OpenAI base64 vector (little-endian float32 bytes) as numbers, or None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw or len(raw) % 4:
        return None
    floats = array("f")
    floats.frombytes(raw)
    if _SWAP:
        floats.byteswap()
    values = floats.tolist()
    return values if all(map(math.isfinite, values)) else None


def usage_count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def one_shot_call(
    requests: Sequence[UpstreamRequest],
    counts: Sequence[int],
    estimates: Sequence[int],
    parse_body: Callable[[bytes], EmbedPart | UpstreamError],
) -> OneShotCall:
    """The calls of one embeddings request: answer i must carry `counts[i]` vectors; a part
    without usage is charged `estimates[i]` prompt tokens."""

    def parse(i: int, body: bytes) -> EmbedPart | UpstreamError:
        part = parse_body(body)
        if isinstance(part, EmbedPart) and len(part.vectors) != counts[i]:
            return protocol_error(
                f"upstream returned {len(part.vectors)} embeddings for {counts[i]} inputs"
            )
        return part

    def merge(parts: list[EmbedPart]) -> list[Event]:
        vectors: list[list[float]] = []
        prompt = 0
        for part, estimate in zip(parts, estimates, strict=True):
            vectors.extend(part.vectors)
            prompt += part.prompt_tokens if part.prompt_tokens is not None else estimate
        out: list[Event] = []
        model = parts[0].model if parts else None
        if model:
            out.append(ResponseMeta(model))
        out.append(Embeddings(vectors))
        out.append(Usage(prompt=prompt))
        return out

    return OneShotCall(tuple(requests), parse, merge)


def split_call(
    inputs: list[str] | list[list[int]],
    size: int,
    url: str,
    headers: Mapping[str, str],
    body_of: Callable[[Any], dict[str, Any]],
    parse_body: Callable[[bytes], EmbedPart | UpstreamError],
) -> OneShotCall:
    """`inputs` in batches of `size`: one JSON POST to `url` each (`body_of(batch)`), the
    answers joined in request order by `one_shot_call`."""
    sent = {k: v for k, v in headers.items() if k != "accept"}
    sent["accept"] = "application/json"
    requests: list[UpstreamRequest] = []
    counts: list[int] = []
    estimates: list[int] = []
    for run in batches(len(inputs), size):
        chunk = inputs[run.start : run.stop]
        requests.append(UpstreamRequest("POST", url, dict(sent), orjson.dumps(body_of(chunk))))
        counts.append(len(chunk))
        estimates.append(estimate_input_tokens(chunk))
    return one_shot_call(requests, counts, estimates, parse_body)
