"""gateway.providers.registry: built-in kinds, lazy loading, plugins via entry points."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.providers import registry
from gateway.providers.base import ProviderSettings
from gateway.providers.openai_compat import OpenAICompatProvider
from gateway.providers.registry import ProviderRegistry, UnknownProviderKind

OPENAI_FAMILY = {
    "openai",
    "openai_compatible",
    "deepseek",
    "mistral",
    "vllm",
    "ollama_openai",
    "groq",
    "together",
}


def settings(kind: str) -> ProviderSettings:
    return ProviderSettings(name="p", kind=kind, base_url="http://127.0.0.1:9/v1")


class FakeEntryPoint:
    def __init__(self, name: str, load: Callable[[], Any]) -> None:
        self.name = name
        self.value = f"fake_pkg.{name}:register_kinds"
        self._load = load

    def load(self) -> Any:
        return self._load()


class AcmeProvider:
    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings


def acme_plugin(register: Callable[[str, Any], None]) -> None:
    register("acme", AcmeProvider)


def fresh(*entry_points: FakeEntryPoint, optional: tuple[str, ...] = ()) -> ProviderRegistry:
    return ProviderRegistry(optional_modules=optional, entry_points=lambda group: entry_points)


def test_builtin_kinds_are_registered() -> None:
    assert OPENAI_FAMILY <= set(registry.kinds())
    assert registry.kinds() == sorted(registry.kinds())
    for kind in OPENAI_FAMILY:
        provider = registry.create(settings(kind))
        assert isinstance(provider, OpenAICompatProvider)
        assert provider.settings.kind == kind


def test_unknown_kind_lists_known_kinds() -> None:
    with pytest.raises(UnknownProviderKind) as info:
        registry.create(settings("nope"))
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert message.startswith("unknown provider kind 'nope'; known kinds: ")
    for kind in OPENAI_FAMILY:
        assert kind in message
    assert info.value.kind == "nope"
    assert set(info.value.known) == set(registry.kinds())


def test_loading_is_lazy_and_happens_once() -> None:
    calls: list[str] = []

    def lookup(group: str) -> list[FakeEntryPoint]:
        calls.append(group)
        return [FakeEntryPoint("acme", lambda: acme_plugin)]

    reg = ProviderRegistry(optional_modules=(), entry_points=lookup)
    assert calls == []
    assert "acme" in reg.kinds()
    reg.kinds()
    reg.create(settings("openai"))
    assert calls == ["race_gateway.providers"]


def test_plugin_entry_point_adds_a_kind() -> None:
    reg = fresh(FakeEntryPoint("acme", lambda: acme_plugin))
    provider = reg.create(settings("acme"))
    assert isinstance(provider, AcmeProvider)
    assert "openai" in reg.kinds()  # built-ins still there
    assert reg.load_problems() == []


def test_entry_point_may_load_a_module_with_register_kinds() -> None:
    class Module:
        register_kinds = staticmethod(acme_plugin)

    reg = fresh(FakeEntryPoint("acme", lambda: Module))
    assert "acme" in reg.kinds()


def test_broken_plugins_do_not_stop_the_others() -> None:
    def fails_to_import() -> Any:
        raise ImportError("No module named 'acme_sdk'")

    def fails_to_register(register: Callable[[str, Any], None]) -> None:
        raise RuntimeError("boom")

    def overrides_builtin(register: Callable[[str, Any], None]) -> None:
        register("openai", AcmeProvider)

    reg = fresh(
        FakeEntryPoint("broken_import", fails_to_import),
        FakeEntryPoint("broken_register", lambda: fails_to_register),
        FakeEntryPoint("not_callable", lambda: 42),
        FakeEntryPoint("hijack", lambda: overrides_builtin),
        FakeEntryPoint("acme", lambda: acme_plugin),
    )
    assert "acme" in reg.kinds()
    assert isinstance(reg.create(settings("openai")), OpenAICompatProvider)
    problems = reg.load_problems()
    assert len(problems) == 4
    assert any("broken_import" in p and "acme_sdk" in p for p in problems)
    assert any("broken_register" in p and "RuntimeError: boom" in p for p in problems)
    assert any("not_callable" in p and "register_kinds" in p for p in problems)
    assert any("hijack" in p and "already registered" in p for p in problems)
    with pytest.raises(UnknownProviderKind) as info:
        reg.create(settings("acme_sdk_kind"))
    assert "broken_import" in str(info.value)  # the likely reason is shown with the error


def test_entry_point_lookup_failure_is_a_problem_not_a_crash() -> None:
    def lookup(group: str) -> list[Any]:
        raise OSError("bad metadata")

    reg = ProviderRegistry(optional_modules=(), entry_points=lookup)
    assert "openai" in reg.kinds()
    assert any("bad metadata" in p for p in reg.load_problems())


def test_optional_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rg_broken_provider.py").write_text("import rg_dependency_that_is_missing\n")
    (tmp_path / "rg_good_provider.py").write_text(
        "def register_kinds(register):\n    register('good', lambda settings: settings)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = fresh(optional=("rg_module_not_written_yet", "rg_broken_provider", "rg_good_provider"))
    assert "good" in reg.kinds()
    problems = reg.load_problems()
    # A module that does not exist yet is silent; one that exists but fails to import is not.
    assert len(problems) == 1 and "rg_broken_provider" in problems[0]


def test_register_validates_and_rejects_conflicts() -> None:
    reg = fresh()
    reg.register("acme", AcmeProvider)
    reg.register("acme", AcmeProvider)  # the same factory again is fine
    with pytest.raises(ValueError, match="already registered"):
        reg.register("acme", lambda s: AcmeProvider(s))
    with pytest.raises(ValueError, match="already registered"):
        reg.register("openai", AcmeProvider)
    with pytest.raises(ValueError, match="non-empty"):
        reg.register("", AcmeProvider)
    with pytest.raises(ValueError, match="non-empty"):
        reg.register(" acme2", AcmeProvider)
    with pytest.raises(TypeError, match="not callable"):
        reg.register("acme2", "AcmeProvider")  # type: ignore[arg-type]


def test_module_level_api_uses_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    def plugin(register: Callable[[str, Any], None]) -> None:
        register("acme", AcmeProvider)
        registry.register("acme_direct", AcmeProvider)  # re-entrant use during loading

    monkeypatch.setattr(registry, "_default", ProviderRegistry())
    monkeypatch.setattr(
        registry, "find_entry_points", lambda group: [FakeEntryPoint("acme", lambda: plugin)]
    )
    assert {"acme", "acme_direct"} <= set(registry.kinds())
    assert isinstance(registry.create(settings("acme_direct")), AcmeProvider)
    registry.register("acme_later", AcmeProvider)
    assert "acme_later" in registry.kinds()
    assert registry.load_problems() == []


def test_factory_errors_propagate() -> None:
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        registry.create(
            ProviderSettings("p", "openai", "https://api.openai.com/v1", options={"colour": 1})
        )
