"""Convert LiteLLM's model price and context-window data into catalogue entries.

LiteLLM (MIT, https://github.com/BerriAI/litellm) publishes
`model_prices_and_context_window.json`: one object per model key with `litellm_provider`,
`mode`, `max_input_tokens`, `max_output_tokens`, `*_cost_per_token` figures in USD per
token, `supports_*` flags and `deprecation_date`. We keep the chat models of the provider
families the gateway speaks, turn prices into USD per million tokens, and record the
source (package and version) and LiteLLM's own reference page on every entry.

Pure: `scripts/refresh_catalogue.py` downloads the package and writes the file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from gateway.catalogue.entry import Capabilities, ModelEntry, Prices, entry_to_json, parse_date

SCHEMA_VERSION = 1

# LiteLLM provider -> (our provider family, the prefix LiteLLM puts before the model id in
# its key, whether a key without that prefix is skipped: Together's unprefixed keys are
# pricing buckets by model size, not models)
FAMILIES: Mapping[str, tuple[str, str, bool]] = {
    "openai": ("openai", "", False),
    "anthropic": ("anthropic", "", False),
    "gemini": ("gemini", "gemini/", False),
    "vertex_ai-language-models": ("vertex", "vertex_ai/", False),
    "mistral": ("mistral", "mistral/", False),
    "deepseek": ("deepseek", "deepseek/", False),
    "groq": ("groq", "groq/", False),
    "together_ai": ("together", "together_ai/", True),
    "ollama": ("ollama", "ollama/", False),
    "dashscope": ("qwen", "dashscope/", False),
}
CHAT_MODES = frozenset({"chat"})

# our price field -> LiteLLM's per-token field
PRICE_SOURCES = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cached_input": "cache_read_input_token_cost",
    "batch_input": "input_cost_per_token_batches",
    "batch_output": "output_cost_per_token_batches",
    "priority_input": "input_cost_per_token_priority",
    "priority_output": "output_cost_per_token_priority",
}
CAPABILITY_SOURCES = {
    "vision": "supports_vision",
    "audio_input": "supports_audio_input",
    "audio_output": "supports_audio_output",
    "tools": "supports_function_calling",
    "structured_output": "supports_response_schema",
    "reasoning": "supports_reasoning",
}


def _per_million(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return round(float(value) * 1_000_000, 6)  # rounding drops float noise (1.5e-07 * 1e6)
    return None


def _tokens(value: object) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 1:
        return int(value)
    return None


def model_id(key: str, prefix: str, required: bool) -> str | None:
    """The provider's own model id from LiteLLM's key; None for keys that are no model
    (fine-tune price templates such as `ft:gpt-4o`, pricing buckets without the prefix)."""
    if prefix and key.startswith(prefix):
        key = key[len(prefix) :]
    elif prefix and required:
        return None
    if not key or key.startswith("ft:"):
        return None
    return key


def convert_entry(key: str, raw: Mapping[str, Any], source: str) -> ModelEntry | None:
    """One LiteLLM object as an entry, or None when it is not a chat model we serve."""
    family = FAMILIES.get(str(raw.get("litellm_provider")))
    if family is None or raw.get("mode") not in CHAT_MODES:
        return None
    provider, prefix, required = family
    model = model_id(key, prefix, required)
    if model is None:
        return None
    prices = Prices(**{ours: _per_million(raw.get(src)) for ours, src in PRICE_SOURCES.items()})
    # LiteLLM writes a flag only when the model has it: absent means no.
    capabilities = Capabilities(
        **{ours: bool(raw.get(theirs, False)) for ours, theirs in CAPABILITY_SOURCES.items()}
    )
    shutdown = parse_date(raw.get("deprecation_date"))
    reference = raw.get("source")
    if not (isinstance(reference, str) and reference.startswith("http")):
        reference = None
    return ModelEntry(
        id=f"{provider}/{model}",
        provider=provider,
        model=model,
        context_window=_tokens(raw.get("max_input_tokens")),
        max_output_tokens=_tokens(raw.get("max_output_tokens")),
        prices=prices,
        capabilities=capabilities,
        deprecated=shutdown is not None,  # a retirement date is announced
        shutdown_date=shutdown,
        successor=str(raw["successor_model"]) if raw.get("successor_model") else None,
        source=f"{source}:{key}",
        reference=reference,
    )


def convert(
    litellm: Mapping[str, Any],
    *,
    package: str,
    version: str,
    path: str,
    generated: dt.date,
) -> dict[str, Any]:
    """The catalogue file (a JSON-ready dict) from LiteLLM's data.

    Where LiteLLM lists one model under two keys (`deepseek-chat` and
    `deepseek/deepseek-chat`), the key with the provider's prefix wins.
    """
    source = f"{package} {version}"
    entries: dict[str, ModelEntry] = {}
    canonical: dict[str, bool] = {}
    for key in sorted(litellm):
        raw = litellm[key]
        if not isinstance(raw, Mapping):
            continue
        entry = convert_entry(key, raw, source)
        if entry is None:
            continue
        prefix = FAMILIES[str(raw["litellm_provider"])][1]
        prefixed = bool(prefix) and key.startswith(prefix)
        if entry.id in entries and canonical[entry.id] >= prefixed:
            continue
        entries[entry.id] = entry
        canonical[entry.id] = prefixed
    return {
        "schema_version": SCHEMA_VERSION,
        "generated": generated.isoformat(),
        "sources": [
            {
                "name": source,
                "package": package,
                "version": version,
                "file": path,
                "url": f"https://pypi.org/project/{package}/{version}/",
                "license": "MIT (see LICENSE-litellm.txt)",
                "units": "prices in USD per million tokens; context_window is LiteLLM's "
                "max_input_tokens",
            }
        ],
        "models": {eid: entry_to_json(entries[eid]) for eid in sorted(entries)},
    }
