"""Declarative differences between OpenAI-compatible servers.

Every OpenAI-compatible kind is the same adapter (`openai_compat.py`) run with a
different `Quirks` value; nothing in the adapter branches on a provider name.
A provider's config may override any quirk field by name in `options`
(`options: {path: /v1/chat, rejected_params: [logprobs]}`); `with_options`
validates those overrides and rejects unknown names with a clear error.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, cast

from gateway.value_class import value_class

MaxTokensField = Literal["passthrough", "max_tokens", "max_completion_tokens"]
MAX_TOKENS_FIELDS: tuple[str, ...] = ("passthrough", "max_tokens", "max_completion_tokens")
ContinuationMode = Literal["none", "prefix", "continue_final_message", "trailing_assistant"]
CONTINUATION_MODES: tuple[str, ...] = (
    "none",
    "prefix",
    "continue_final_message",
    "trailing_assistant",
)

# Option keys that are not quirks but are still understood by the adapter.
NON_QUIRK_OPTIONS = frozenset({"headers"})

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The gateway owns these body fields; a quirk may not reject or rename them.
_RESERVED_PARAMS = frozenset({"model", "messages", "stream", "stream_options"})


@value_class
class Quirks:
    """How one OpenAI-compatible server differs from api.openai.com.

    - `path`: appended to the provider's `base_url` (`https://api.openai.com/v1`
      + `/chat/completions`).
    - `auth_scheme`: `bearer` (`Authorization: Bearer <key>`), `header:<name>`
      (the key as the value of header `<name>`), or `none`. Without an API key
      no auth header is sent at all.
    - `rejected_params`: request fields the server refuses; dropped when the
      deployment sets `drop_params`, otherwise `UnsupportedParams`.
    - `renamed_params`: (client name, upstream name) pairs, e.g. Mistral's
      `seed` -> `random_seed`.
    - `send_stream_options`: send `stream_options: {include_usage: true}` (the
      gateway needs usage even when the client did not ask). When False the
      field is never sent, the client's included.
    - `reasoning_fields`: delta/message fields that carry reasoning text, in
      order of preference (the first non-empty one of a delta is used).
    - `max_tokens_field`: `passthrough` keeps whichever of `max_tokens` /
      `max_completion_tokens` the client sent; a field name sends the limit
      under that name only.
    - `usage_fields`: dotted paths in a chunk where usage can be found (Groq
      also reports it under `x_groq.usage`).
    - `embeddings_path`: appended to `base_url` for embeddings (`/embeddings`).
    - `embed_batch_size`: inputs per embeddings call (OpenAI takes 2048); a
      deployment's `batch_size` overrides it.
    - `continuation`: how the server continues a prefix of the assistant's answer
      (resume on a backup): `none` (it cannot), `prefix` (`"prefix": true` on a
      trailing assistant message: DeepSeek, Mistral), `continue_final_message`
      (vLLM: `continue_final_message: true, add_generation_prompt: false`) or
      `trailing_assistant` (a trailing assistant message is continued as is: Ollama).
    - `continuation_path`: where continuations go, when not to `path`; appended to
      `base_url` without a trailing `/v1` (DeepSeek's beta: `/beta/chat/completions`).
    """

    path: str = "/chat/completions"
    auth_scheme: str = "bearer"
    rejected_params: frozenset[str] = frozenset()
    renamed_params: tuple[tuple[str, str], ...] = ()
    send_stream_options: bool = True
    reasoning_fields: tuple[str, ...] = ("reasoning_content", "reasoning")
    max_tokens_field: MaxTokensField = "passthrough"
    usage_fields: tuple[str, ...] = ("usage",)
    embeddings_path: str = "/embeddings"
    embed_batch_size: int = 2048
    continuation: ContinuationMode = "none"
    continuation_path: str | None = None

    def __post_init__(self) -> None:  # the built-in table below is checked too
        for name, value in self.to_dict().items():
            _check(name, value)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


QUIRK_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Quirks))


def with_options(base: Quirks, options: Mapping[str, Any], where: str) -> Quirks:
    """`base` with the quirk fields named in `options` replaced (validated).

    `where` names the provider in error messages. Keys in NON_QUIRK_OPTIONS are
    skipped; any other unknown key is an error.
    """
    changes: dict[str, Any] = {}
    for name, value in options.items():
        if name in NON_QUIRK_OPTIONS:
            continue
        if name not in QUIRK_NAMES:
            known = ", ".join(sorted((*QUIRK_NAMES, *NON_QUIRK_OPTIONS)))
            raise ValueError(f"{where}: unknown option {name!r} (known options: {known})")
        changes[name] = _coerce(name, value, where)
    return dataclasses.replace(base, **changes) if changes else base


def _str_list(name: str, value: Any, where: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(f"{where}: option {name!r} must be a list of strings")
    if not all(isinstance(item, str) for item in value):
        raise ValueError(f"{where}: option {name!r} must be a list of strings")
    return list(value)


def _coerce(name: str, value: Any, where: str) -> Any:
    """A config value (YAML lists and mappings) as the quirk field's type."""
    if name == "rejected_params":
        value = frozenset(_str_list(name, value, where))
    elif name in ("reasoning_fields", "usage_fields"):
        value = tuple(_str_list(name, value, where))
    elif name == "renamed_params":
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ValueError(f"{where}: option 'renamed_params' must map names to names")
        value = tuple(sorted(value.items()))
    try:
        _check(name, value)
    except ValueError as exc:
        raise ValueError(f"{where}: option {exc}") from None
    return value


def _check(name: str, value: Any) -> None:
    """Raise ValueError('<name> ...') when `value` is not valid for quirk `name`."""
    if name in ("path", "embeddings_path", "continuation_path"):
        if name == "continuation_path" and value is None:
            return
        if not isinstance(value, str) or not value.startswith("/") or " " in value:
            raise ValueError(f"{name!r} must be a URL path starting with '/', got {value!r}")
    elif name == "continuation":
        if value not in CONTINUATION_MODES:
            choices = ", ".join(CONTINUATION_MODES)
            raise ValueError(f"'continuation' must be one of {choices}, got {value!r}")
    elif name == "embed_batch_size":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"'embed_batch_size' must be a positive integer, got {value!r}")
    elif name == "auth_scheme":
        ok = value in ("bearer", "none")
        if isinstance(value, str) and value.startswith("header:"):
            ok = bool(_HEADER_NAME.match(value[7:]))
        if not ok:
            raise ValueError(
                f"'auth_scheme' must be 'bearer', 'none' or 'header:<name>', got {value!r}"
            )
    elif name == "rejected_params":
        _check_names(name, value, frozenset)
    elif name == "renamed_params":
        if not isinstance(value, tuple) or not all(
            isinstance(pair, tuple) and len(pair) == 2 for pair in value
        ):
            raise ValueError("'renamed_params' must be (name, name) pairs")
        _check_names(name, tuple(n for pair in value for n in pair), tuple)
    elif name == "send_stream_options":
        if not isinstance(value, bool):
            raise ValueError(f"'send_stream_options' must be true or false, got {value!r}")
    elif name in ("reasoning_fields", "usage_fields"):
        _check_names(name, value, tuple, dotted=name == "usage_fields")
    elif name == "max_tokens_field":
        if value not in MAX_TOKENS_FIELDS:
            choices = ", ".join(MAX_TOKENS_FIELDS)
            raise ValueError(f"'max_tokens_field' must be one of {choices}, got {value!r}")


def _check_names(name: str, value: Any, kind: type, dotted: bool = False) -> None:
    if not isinstance(value, kind):
        raise ValueError(f"{name!r} has the wrong type: {type(value).__name__}")
    for item in cast(tuple[Any, ...], value):
        parts = item.split(".") if dotted and isinstance(item, str) else [item]
        if not all(isinstance(p, str) and _PARAM_NAME.match(p) for p in parts):
            raise ValueError(f"{name!r} contains an invalid field name: {item!r}")
        if name in ("rejected_params", "renamed_params") and item in _RESERVED_PARAMS:
            raise ValueError(f"{name!r} may not include {item!r} (owned by the gateway)")


# Built-in kinds. Sources: ../shared/wire-formats.md §1 (OpenAI), §4 (Mistral),
# §5 (DeepSeek), §6 (Ollama /v1), §6b (vLLM); Groq and Together API docs.
BUILTIN_QUIRKS: Mapping[str, Quirks] = MappingProxyType(
    {
        "openai": Quirks(),
        "openai_compatible": Quirks(),
        # Chat prefix completion is a beta feature, served under /beta only.
        "deepseek": Quirks(
            max_tokens_field="max_tokens",
            continuation="prefix",
            continuation_path="/beta/chat/completions",
        ),
        "mistral": Quirks(
            rejected_params=frozenset({"logprobs", "top_logprobs"}),
            renamed_params=(("seed", "random_seed"),),
            send_stream_options=False,  # Mistral rejected stream_options; usage comes unasked
            max_tokens_field="max_tokens",
            continuation="prefix",
        ),
        "vllm": Quirks(continuation="continue_final_message"),
        # /v1 runs through the same chat handler as /api/chat, which continues a
        # trailing assistant message.
        "ollama_openai": Quirks(max_tokens_field="max_tokens", continuation="trailing_assistant"),
        "groq": Quirks(
            rejected_params=frozenset({"logprobs", "top_logprobs", "logit_bias"}),
            usage_fields=("usage", "x_groq.usage"),
        ),
        "together": Quirks(max_tokens_field="max_tokens"),
    }
)
