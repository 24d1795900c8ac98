"""One model's facts in the catalogue: limits, prices, capabilities and lifecycle.

Everything here is pure data (no I/O). `parse_entry` reads one entry of a catalogue file
(the shipped `models.json` or a user's private file) and collects problems instead of
raising, so a user sees every mistake in their file at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import field, fields
from typing import Any

from gateway.value_class import value_class

PRICE_FIELDS = (
    "input",
    "output",
    "cached_input",
    "batch_input",
    "batch_output",
    "priority_input",
    "priority_output",
)
CAPABILITIES = ("vision", "audio_input", "audio_output", "tools", "structured_output", "reasoning")


def _overlay(base: object, over: object, names: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for name in names:
        value = getattr(over, name)
        out[name] = value if value is not None else getattr(base, name)
    return out


@value_class
class Prices:
    """USD per million tokens; None where the source gives no figure."""

    input: float | None = None
    output: float | None = None
    cached_input: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None
    priority_input: float | None = None
    priority_output: float | None = None

    def merged(self, over: Prices) -> Prices:
        """These prices with every figure `over` gives replacing ours."""
        return Prices(**_overlay(self, over, PRICE_FIELDS))

    def as_dict(self) -> dict[str, float]:
        return {n: getattr(self, n) for n in PRICE_FIELDS if getattr(self, n) is not None}


@value_class
class Capabilities:
    """What a model accepts. None means unknown: planning never skips on an unknown."""

    vision: bool | None = None
    audio_input: bool | None = None
    audio_output: bool | None = None
    tools: bool | None = None
    structured_output: bool | None = None
    reasoning: bool | None = None

    def merged(self, over: Capabilities) -> Capabilities:
        return Capabilities(**_overlay(self, over, CAPABILITIES))

    def as_dict(self) -> dict[str, bool]:
        return {n: getattr(self, n) for n in CAPABILITIES if getattr(self, n) is not None}


@value_class
class ModelEntry:
    """A catalogue entry. `id` is `provider/model` (e.g. `openai/gpt-4o-mini`); `provider`
    is the catalogue's provider family (openai, anthropic, gemini, vertex, mistral,
    deepseek, groq, together, ollama, qwen, or any name a private file uses)."""

    id: str
    provider: str
    model: str
    context_window: int | None = None  # tokens the prompt and the output must fit in
    max_output_tokens: int | None = None
    prices: Prices = field(default_factory=Prices)
    capabilities: Capabilities = field(default_factory=Capabilities)
    deprecated: bool = False
    shutdown_date: dt.date | None = None  # the provider retires the model on this day
    successor: str | None = None
    source: str = ""  # where the figures came from: "litellm 1.110.2" or a file's path
    reference: str | None = None  # the provider page the source cites


def entry_to_json(entry: ModelEntry) -> dict[str, Any]:
    """The file form of an entry (without its id, which is the key)."""
    out: dict[str, Any] = {"provider": entry.provider, "model": entry.model}
    if entry.context_window is not None:
        out["context_window"] = entry.context_window
    if entry.max_output_tokens is not None:
        out["max_output_tokens"] = entry.max_output_tokens
    if entry.prices.as_dict():
        out["price"] = entry.prices.as_dict()
    if entry.capabilities.as_dict():
        out["capabilities"] = entry.capabilities.as_dict()
    if entry.deprecated:
        out["deprecated"] = True
    if entry.shutdown_date is not None:
        out["shutdown_date"] = entry.shutdown_date.isoformat()
    if entry.successor:
        out["successor"] = entry.successor
    if entry.source:
        out["source"] = entry.source
    if entry.reference:
        out["reference"] = entry.reference
    return out


_ENTRY_KEYS = frozenset(
    {
        "provider",
        "model",
        "extends",
        "context_window",
        "max_output_tokens",
        "price",
        "capabilities",
        "deprecated",
        "shutdown_date",
        "successor",
        "source",
        "reference",
    }
)


def parse_date(value: object) -> dt.date | None:
    """A YYYY-MM-DD date (YAML may already have made it a date); None when not one."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _count(raw: Mapping[str, Any], key: str, problems: list[str], where: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    problems.append(f"{where}.{key}: must be an integer >= 1, got {value!r}")
    return None


def parse_prices(raw: object, problems: list[str], where: str) -> Prices:
    if raw is None:
        return Prices()
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping of prices per million tokens")
        return Prices()
    values: dict[str, float] = {}
    for key, value in raw.items():
        if key not in PRICE_FIELDS:
            problems.append(f"{where}.{key}: unknown price (known: {', '.join(PRICE_FIELDS)})")
        elif isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            values[key] = float(value)
        else:
            problems.append(f"{where}.{key}: must be a number >= 0, got {value!r}")
    return Prices(**values)


def parse_capabilities(raw: object, problems: list[str], where: str) -> Capabilities:
    if raw is None:
        return Capabilities()
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping of capability: true|false")
        return Capabilities()
    values: dict[str, bool] = {}
    for key, value in raw.items():
        if key not in CAPABILITIES:
            problems.append(f"{where}.{key}: unknown capability (known: {', '.join(CAPABILITIES)})")
        elif isinstance(value, bool):
            values[key] = value
        else:
            problems.append(f"{where}.{key}: must be true or false, got {value!r}")
    return Capabilities(**values)


def parse_entry(
    entry_id: str,
    raw: object,
    problems: list[str],
    where: str,
    source: str,
    base: ModelEntry | None = None,
) -> ModelEntry | None:
    """One entry of a catalogue file; `base` is the entry it `extends` (its figures are
    inherited and the entry's own replace them). None (with problems) when unusable."""
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping")
        return None
    for key in raw:
        if key not in _ENTRY_KEYS:
            problems.append(f"{where}.{key}: unknown key (known: {', '.join(sorted(_ENTRY_KEYS))})")
    provider, _, model = entry_id.partition("/")
    provider = str(raw.get("provider") or provider)
    model = str(raw.get("model") or model)
    if not provider or not model:
        problems.append(f"{where}: the id must be provider/model (or give provider and model)")
        return None
    shutdown = None
    if raw.get("shutdown_date") is not None:
        shutdown = parse_date(raw["shutdown_date"])
        if shutdown is None:
            problems.append(f"{where}.shutdown_date: must be a date YYYY-MM-DD")
    deprecated = raw.get("deprecated", None)
    if deprecated is not None and not isinstance(deprecated, bool):
        problems.append(f"{where}.deprecated: must be true or false")
        deprecated = None
    entry = ModelEntry(
        id=entry_id,
        provider=provider,
        model=model,
        context_window=_count(raw, "context_window", problems, where),
        max_output_tokens=_count(raw, "max_output_tokens", problems, where),
        prices=parse_prices(raw.get("price"), problems, f"{where}.price"),
        capabilities=parse_capabilities(raw.get("capabilities"), problems, f"{where}.capabilities"),
        deprecated=bool(deprecated),
        shutdown_date=shutdown,
        successor=str(raw["successor"]) if raw.get("successor") else None,
        source=str(raw.get("source") or source),
        reference=str(raw["reference"]) if raw.get("reference") else None,
    )
    if base is None:
        return entry
    return inherit(base, entry, raw)


def inherit(base: ModelEntry, own: ModelEntry, given: Mapping[str, Any]) -> ModelEntry:
    """`own` on top of `base`: every field `given` names replaces the base's."""
    values = {f.name: getattr(base, f.name) for f in fields(ModelEntry)}
    values.update(id=own.id, provider=own.provider, model=own.model)
    values["source"] = f"{own.source} (extends {base.id}: {base.source})"
    for name in ("context_window", "max_output_tokens", "successor", "reference"):
        if given.get(name) is not None:
            values[name] = getattr(own, name)
    if "deprecated" in given:
        values["deprecated"] = own.deprecated
    if "shutdown_date" in given:
        values["shutdown_date"] = own.shutdown_date
    values["prices"] = base.prices.merged(own.prices)
    values["capabilities"] = base.capabilities.merged(own.capabilities)
    return ModelEntry(**values)
