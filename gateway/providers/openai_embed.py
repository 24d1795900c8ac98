"""OpenAI-family embeddings: `POST {base_url}{quirks.embeddings_path}` (`/embeddings`),
2048 inputs per call unless the quirks or the deployment say otherwise. Pure: no I/O.

Upstreams are always asked for floats (every compatible server speaks them); a base64
answer from a server that ignores `encoding_format` is read too. Unknown fields of the
client's request are passed through, as the chat adapter does.
"""

from __future__ import annotations

from typing import Any

from gateway.providers.base import OneShotCall, TargetModel
from gateway.providers.common import json_object, protocol_error
from gateway.providers.embed import (
    EmbedPart,
    batch_size,
    checked_vector,
    decoded_vector,
    split_call,
    usage_count,
)
from gateway.providers.openai_stream import error_info, stream_error
from gateway.request import EmbedRequest
from gateway.streaming.events import UpstreamError

# The body fields the gateway owns; a client's extra field never overrides them.
OWN_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})


def build_embed_call(
    request: EmbedRequest,
    target: TargetModel,
    url: str,
    headers: dict[str, str],
    default_batch: int,
    secret: str | None,
) -> OneShotCall:
    body: dict[str, Any] = {"model": target.model, "input": None, "encoding_format": "float"}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user is not None:
        body["user"] = request.user
    for name, value in request.extra.items():
        if name not in OWN_FIELDS:
            body[name] = value
    return split_call(
        request.inputs,
        batch_size(target, default_batch),
        url,
        headers,
        lambda chunk: {**body, "input": chunk},
        lambda raw: parse_embeddings(raw, secret),
    )


def parse_embeddings(raw: bytes, secret: str | None = None) -> EmbedPart | UpstreamError:
    """`{"data": [{"index", "embedding"}...], "usage": {"prompt_tokens"}, "model"}`."""
    data = json_object(raw)
    if isinstance(data, UpstreamError):
        return data
    items = data.get("data")
    if not isinstance(items, list):
        info = error_info(data)  # some servers answer an error with a 200
        if info is not None:
            return stream_error(info, secret)
        return protocol_error("upstream embeddings response has no data")
    vectors: list[list[float] | None] = [None] * len(items)
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            return protocol_error("upstream embeddings response has a non-object item")
        index = item.get("index", position)
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or not 0 <= index < len(items)
            or vectors[index] is not None
        ):
            return protocol_error("upstream embeddings have missing or repeated indexes")
        value = item.get("embedding")
        vector = decoded_vector(value) if isinstance(value, str) else checked_vector(value)
        if vector is None:
            return protocol_error(f"upstream embedding {index} is not an array of numbers")
        vectors[index] = vector
    usage = data.get("usage")
    prompt = usage_count(usage.get("prompt_tokens")) if isinstance(usage, dict) else None
    model = data.get("model")
    return EmbedPart(
        vectors,  # type: ignore[arg-type]  # every slot was filled once, indexes checked
        prompt,
        model if isinstance(model, str) and model else None,
    )
