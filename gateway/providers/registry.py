"""Provider kinds (the `kind:` of a provider's config) and the factories that build them.

Built-in kinds are registered lazily, on first use: `gateway.providers.openai_compat`
always, and `anthropic`, `gemini`, `ollama` when those modules import. Each such
module exposes `register_kinds(register)`. Third-party packages add kinds with an
entry point in group `race_gateway.providers` that loads a `register_kinds(register)`
callable:

    [project.entry-points."race_gateway.providers"]
    acme = "acme_gateway.provider:register_kinds"

A plugin that fails to load does not stop the gateway; the problem is kept
(`load_problems()`) and shown when its kind is asked for.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from collections.abc import Callable, Iterable
from typing import Any

from gateway.providers.base import Provider, ProviderSettings

__all__ = [
    "ENTRY_POINT_GROUP",
    "ProviderFactory",
    "ProviderRegistry",
    "UnknownProviderKind",
    "create",
    "kinds",
    "load_problems",
    "register",
]

ProviderFactory = Callable[[ProviderSettings], Provider]
ENTRY_POINT_GROUP = "race_gateway.providers"
BUILTIN_MODULES: tuple[str, ...] = ("gateway.providers.openai_compat",)
OPTIONAL_MODULES: tuple[str, ...] = (
    "gateway.providers.anthropic",
    "gateway.providers.gemini",
    "gateway.providers.ollama",
)


class UnknownProviderKind(KeyError):
    """No factory is registered for a kind. The message lists the known kinds."""

    def __init__(self, kind: str, known: list[str], problems: list[str] | None = None) -> None:
        self.kind = kind
        self.known = known
        self.problems = problems or []
        message = f"unknown provider kind {kind!r}; known kinds: {', '.join(known) or '(none)'}"
        if self.problems:
            message += "; provider plugins that failed to load: " + "; ".join(self.problems)
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return self.message


def find_entry_points(group: str) -> Iterable[Any]:
    """The installed entry points of `group` (replaceable in tests)."""
    return importlib.metadata.entry_points(group=group)


class ProviderRegistry:
    """Kind -> factory. Loads built-ins and plugins once, on the first lookup or register."""

    def __init__(
        self,
        builtin_modules: tuple[str, ...] = BUILTIN_MODULES,
        optional_modules: tuple[str, ...] = OPTIONAL_MODULES,
        entry_point_group: str | None = ENTRY_POINT_GROUP,
        entry_points: Callable[[str], Iterable[Any]] | None = None,
    ) -> None:
        self._builtin_modules = builtin_modules
        self._optional_modules = optional_modules
        self._group = entry_point_group
        self._entry_points = entry_points
        self._factories: dict[str, ProviderFactory] = {}
        self._problems: list[str] = []
        self._lock = threading.RLock()
        self._loaded = False
        self._loading = False

    def register(self, kind: str, factory: ProviderFactory) -> None:
        """Add a kind. Registering a kind again with a different factory is an error."""
        self._ensure_loaded()
        self._add(kind, factory)

    def create(self, settings: ProviderSettings) -> Provider:
        """A provider for `settings.kind`. Raises UnknownProviderKind; a factory may raise
        ValueError for invalid settings."""
        self._ensure_loaded()
        factory = self._factories.get(settings.kind)
        if factory is None:
            raise UnknownProviderKind(settings.kind, self.kinds(), list(self._problems))
        return factory(settings)

    def kinds(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._factories)

    def load_problems(self) -> list[str]:
        """Optional modules and plugins that failed to load, as messages."""
        self._ensure_loaded()
        return list(self._problems)

    def _add(self, kind: str, factory: ProviderFactory) -> None:
        if not isinstance(kind, str) or not kind or kind != kind.strip():
            raise ValueError(f"provider kind must be a non-empty name, got {kind!r}")
        if not callable(factory):
            raise TypeError(f"factory for provider kind {kind!r} is not callable")
        with self._lock:
            existing = self._factories.get(kind)
            if existing is not None and existing is not factory:
                raise ValueError(f"provider kind {kind!r} is already registered")
            self._factories[kind] = factory

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:  # re-entrant: a module's register_kinds may call register()
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                self._load()
            finally:
                self._loading = False
                self._loaded = True

    def _load(self) -> None:
        entry_points = self._plugin_entry_points()
        # The built-ins declare the same entry points in our own pyproject.toml; they are
        # imported directly only when the package metadata is absent (a bare source tree).
        declared = {str(ep.value).split(":", 1)[0] for ep in entry_points}
        for name in self._builtin_modules:
            if name not in declared:
                importlib.import_module(name).register_kinds(self._add)
        for name in self._optional_modules:
            if name in declared:
                continue
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                if not (isinstance(exc, ModuleNotFoundError) and exc.name == name):
                    self._problems.append(f"{name}: {type(exc).__name__}: {exc}")
                continue  # a module that does not exist (yet) is not a problem
            self._run(name, getattr(module, "register_kinds", None))
        for entry_point in entry_points:
            label = f"plugin {entry_point.name!r} ({entry_point.value})"
            try:
                loaded = entry_point.load()
            except Exception as exc:
                self._problems.append(f"{label}: {type(exc).__name__}: {exc}")
                continue
            self._run(label, getattr(loaded, "register_kinds", loaded))

    def _plugin_entry_points(self) -> list[Any]:
        if self._group is None:
            return []
        lookup = self._entry_points or find_entry_points
        try:
            return list(lookup(self._group))
        except Exception as exc:  # broken package metadata must not stop the gateway
            self._problems.append(f"entry points {self._group!r}: {type(exc).__name__}: {exc}")
            return []

    def _run(self, label: str, register_kinds: Any) -> None:
        if not callable(register_kinds):
            self._problems.append(f"{label}: has no callable register_kinds(register)")
            return
        try:
            register_kinds(self._add)
        except Exception as exc:
            self._problems.append(f"{label}: {type(exc).__name__}: {exc}")


_default = ProviderRegistry()


def register(kind: str, factory: ProviderFactory) -> None:
    """Add a provider kind to the process-wide registry."""
    _default.register(kind, factory)


def create(settings: ProviderSettings) -> Provider:
    """Build the provider for `settings.kind`. Raises UnknownProviderKind."""
    return _default.create(settings)


def kinds() -> list[str]:
    """Every registered kind, sorted."""
    return _default.kinds()


def load_problems() -> list[str]:
    """Optional provider modules and plugins that failed to load."""
    return _default.load_problems()
