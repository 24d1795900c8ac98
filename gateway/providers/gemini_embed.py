"""Gemini embeddings: `POST {prefix}/models/{model}:batchEmbedContents`, at most 100 texts
per call (the API's limit). Pure: no I/O.

Gemini takes text only (token arrays are refused) and reports no token usage for
embeddings, so a call is charged the gateway's estimate of its inputs. `dimensions` is
sent as `outputDimensionality`; `user` has no equivalent and is left out; any other field
is refused unless the deployment sets `drop_params`.
"""

from __future__ import annotations

from typing import Any

from gateway.providers.base import OneShotCall, TargetModel, UnsupportedParams
from gateway.providers.common import json_object, protocol_error
from gateway.providers.embed import (
    EmbedPart,
    batch_size,
    checked_vector,
    split_call,
    texts_of,
)
from gateway.request import EmbedRequest
from gateway.streaming.events import UpstreamError

BATCH_SIZE = 100  # batchEmbedContents: at most 100 requests per batch


def build_embed_call(
    request: EmbedRequest,
    target: TargetModel,
    prefix: str,
    model_path: str,
    headers: dict[str, str],
    provider: str,
) -> OneShotCall:
    """`model_path` is the URL-quoted model id (without `models/`)."""
    texts = texts_of(request, provider)
    if request.extra and not target.drop_params:
        raise UnsupportedParams(sorted(request.extra), provider)
    url = f"{prefix}/models/{model_path}:batchEmbedContents"
    name = "models/" + target.model.removeprefix("models/")
    template: dict[str, Any] = {"model": name}
    if request.dimensions is not None:
        template["outputDimensionality"] = request.dimensions

    def body_of(chunk: list[str]) -> dict[str, Any]:
        return {"requests": [{**template, "content": {"parts": [{"text": t}]}} for t in chunk]}

    return split_call(
        texts,
        batch_size(target, BATCH_SIZE),
        url,
        headers,
        body_of,
        parse_embeddings,
    )


def parse_embeddings(raw: bytes) -> EmbedPart | UpstreamError:
    """`{"embeddings": [{"values": [...]}, ...]}`, in request order."""
    data = json_object(raw)
    if isinstance(data, UpstreamError):
        return data
    items = data.get("embeddings")
    if not isinstance(items, list):
        return protocol_error("upstream batchEmbedContents response has no embeddings")
    vectors: list[list[float]] = []
    for i, item in enumerate(items):
        vector = checked_vector(item.get("values")) if isinstance(item, dict) else None
        if vector is None:
            return protocol_error(f"upstream embedding {i} is not an array of numbers")
        vectors.append(vector)
    return EmbedPart(vectors)
