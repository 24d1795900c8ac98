"""Ollama embeddings: `POST {base_url}/api/embed`. Pure: no I/O.

Ollama takes text only (token arrays are refused). It has no batch limit of its own;
a local model works through a batch one input after another, so the default of 256
inputs per call keeps each call short enough for the deployment's timeout (a
deployment's `batch_size` changes it). `dimensions` and the deployment's `keep_alive`
are sent; `user` has no equivalent and is left out; other fields are refused unless the
deployment sets `drop_params`. Usage is Ollama's `prompt_eval_count`.
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
    usage_count,
)
from gateway.request import EmbedRequest
from gateway.streaming.events import UpstreamError

BATCH_SIZE = 256
PASSTHROUGH_EXTRA = frozenset({"truncate", "keep_alive", "options"})


def build_embed_call(
    request: EmbedRequest,
    target: TargetModel,
    url: str,
    headers: dict[str, str],
    provider: str,
    keep_alive: Any = None,
) -> OneShotCall:
    texts = texts_of(request, provider)
    template: dict[str, Any] = {"model": target.model}
    unsupported = [name for name in request.extra if name not in PASSTHROUGH_EXTRA]
    if unsupported and not target.drop_params:
        raise UnsupportedParams(unsupported, provider)
    template.update({k: v for k, v in request.extra.items() if k in PASSTHROUGH_EXTRA})
    if request.dimensions is not None:
        template["dimensions"] = request.dimensions
    if keep_alive is not None:
        template.setdefault("keep_alive", keep_alive)
    return split_call(
        texts,
        batch_size(target, BATCH_SIZE),
        url,
        headers,
        lambda chunk: {**template, "input": chunk},
        parse_embeddings,
    )


def parse_embeddings(raw: bytes) -> EmbedPart | UpstreamError:
    """`{"model", "embeddings": [[...], ...], "prompt_eval_count"}`."""
    data = json_object(raw)
    if isinstance(data, UpstreamError):
        return data
    items = data.get("embeddings")
    if not isinstance(items, list):
        return protocol_error("upstream /api/embed response has no embeddings")
    vectors: list[list[float]] = []
    for i, item in enumerate(items):
        vector = checked_vector(item)
        if vector is None:
            return protocol_error(f"upstream embedding {i} is not an array of numbers")
        vectors.append(vector)
    model = data.get("model")
    return EmbedPart(
        vectors,
        usage_count(data.get("prompt_eval_count")),
        model if isinstance(model, str) and model else None,
    )
