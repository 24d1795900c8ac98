"""The catalogue: the shipped model facts plus a config's private files, and lookup.

A deployment finds its entry by model name within the families its provider kind
speaks (`KIND_FAMILIES`): an `openai` provider's `gpt-4o-mini` is `openai/gpt-4o-mini`.
Kinds that serve anyone's models (`openai_compatible`, `vllm`, plugins) match by model
name alone, and only when exactly one family has it. Entries from private files win over
shipped ones. Loading reads files, so it happens when the config is loaded, never on a
request.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gateway.catalogue.entry import ModelEntry, parse_entry
from gateway.value_class import value_class

SHIPPED_FILE = "models.json"
KIND_FAMILIES: Mapping[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "anthropic": ("anthropic",),
    "gemini": ("gemini", "vertex"),
    "mistral": ("mistral",),
    "deepseek": ("deepseek",),
    "groq": ("groq",),
    "together": ("together",),
    "ollama": ("ollama",),
    "ollama_openai": ("ollama",),
}


@value_class
class Match:
    entry: ModelEntry | None
    ambiguous: tuple[str, ...] = ()  # entry ids that all matched (then `entry` is None)


class Catalogue:
    def __init__(
        self,
        entries: Iterable[ModelEntry],
        sources: Iterable[Mapping[str, Any]] = (),
        private: Iterable[ModelEntry] = (),
    ) -> None:
        self.sources = [dict(s) for s in sources]
        self._entries: dict[str, ModelEntry] = {e.id: e for e in entries}
        self._private: set[str] = set()
        for e in private:
            self._entries[e.id] = e
            self._private.add(e.id)
        self._by_model: dict[str, list[ModelEntry]] = {}
        for e in self._entries.values():
            self._by_model.setdefault(e.model, []).append(e)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, entry_id: str) -> ModelEntry | None:
        return self._entries.get(entry_id)

    def entries(self) -> list[ModelEntry]:
        return [self._entries[k] for k in sorted(self._entries)]

    def is_private(self, entry_id: str) -> bool:
        return entry_id in self._private

    def find(self, model: str, kind: str) -> Match:
        """The entry a deployment of `model` on a provider of `kind` inherits from."""
        found = self._by_model.get(model, [])
        families = KIND_FAMILIES.get(kind)
        if families is not None:
            found = sorted(
                (e for e in found if e.provider in families),
                key=lambda e: families.index(e.provider),
            )
        private = [e for e in found if e.id in self._private]
        if private:
            found = private
        if not found:
            return Match(None)
        if families is None and len(found) > 1:
            return Match(None, tuple(sorted(e.id for e in found)))
        return Match(found[0])

    def with_private(self, entries: Iterable[ModelEntry]) -> Catalogue:
        return Catalogue(
            (e for i, e in self._entries.items() if i not in self._private),
            self.sources,
            [*(self._entries[i] for i in sorted(self._private)), *entries],
        )


def parse_models(
    data: object, source: str, base: Catalogue | None = None
) -> tuple[list[ModelEntry], list[str]]:
    """The entries of one catalogue file's tree and its problems; an entry may `extends`
    an entry of `base` or one earlier in the same file."""
    problems: list[str] = []
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), Mapping):
        return [], ["must be a mapping with `models: {provider/model: {...}}`"]
    known = {k for k in data if k not in ("models", "schema_version", "generated", "sources")}
    problems += [f"{k}: unknown key" for k in sorted(map(str, known))]
    out: list[ModelEntry] = []
    mine: dict[str, ModelEntry] = {}
    for entry_id, raw in data["models"].items():
        where = f"models.{entry_id}"
        parent = None
        if isinstance(raw, Mapping) and raw.get("extends") is not None:
            name = str(raw["extends"])
            parent = mine.get(name) or (base.get(name) if base is not None else None)
            if parent is None:
                problems.append(f"{where}.extends: no catalogue entry {name!r}")
                continue
        entry = parse_entry(str(entry_id), raw, problems, where, source, parent)
        if entry is not None:
            out.append(entry)
            mine[entry.id] = entry
    return out, problems


@functools.cache
def shipped() -> Catalogue:
    """The catalogue in the package (read once per process)."""
    text = resources.files("gateway.catalogue").joinpath(SHIPPED_FILE).read_text("utf-8")
    data = json.loads(text)
    entries, problems = parse_models(data, "shipped")
    if problems:  # a broken shipped file is a packaging bug, not a user's mistake
        raise ValueError(f"gateway/catalogue/{SHIPPED_FILE}: " + "; ".join(problems[:5]))
    sources = [{**s, "generated": data.get("generated")} for s in data.get("sources", ())]
    return Catalogue(entries, sources)


def read_file(path: Path) -> object:
    """A private catalogue file (YAML or JSON). Raises OSError or ValueError."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {type(exc).__name__}") from None


def load(
    files: Iterable[Path], use_shipped: bool = True
) -> tuple[Catalogue, list[tuple[int, str]]]:
    """The shipped catalogue (unless turned off) with the private files on top, and the
    problems as (file index, message)."""
    catalogue = shipped() if use_shipped else Catalogue(())
    problems: list[tuple[int, str]] = []
    for i, path in enumerate(files):
        try:
            data = read_file(path)
        except (OSError, ValueError) as exc:
            problems.append((i, f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}"))
            continue
        entries, found = parse_models(data, str(path), catalogue)
        problems += [(i, f"{path}: {p}") for p in found]
        catalogue = catalogue.with_private(entries)
    return catalogue, problems
