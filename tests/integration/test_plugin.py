"""A provider plugin installed as a separate distribution adds a kind without gateway changes."""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp
import pytest

from gateway.providers import registry
from tests.stack import FAST, stack

PLUGIN = """
from gateway.providers.openai_compat import openai_compatible
from gateway.providers.quirks import BUILTIN_QUIRKS

def register_kinds(register):
    # An "acme" server: OpenAI-compatible wire format behind a different path.
    register("acme", openai_compatible(BUILTIN_QUIRKS["openai"]))
"""


def install_plugin(site: Path) -> None:
    """What `pip install rg-acme-plugin` leaves on sys.path: the module and its dist-info."""
    (site / "rg_acme_plugin.py").write_text(PLUGIN)
    info = site / "rg_acme_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rg-acme-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[race_gateway.providers]\nacme = rg_acme_plugin:register_kinds\n"
    )
    (info / "RECORD").write_text("")


@pytest.fixture
def plugin_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_default", registry.ProviderRegistry())
    yield
    sys.modules.pop("rg_acme_plugin", None)


def test_plugin_kind_is_listed(plugin_installed: None) -> None:
    assert "acme" in registry.kinds()
    assert registry.load_problems() == []


def test_unknown_kind_without_plugin() -> None:
    fresh = registry.ProviderRegistry()
    assert "acme" not in fresh.kinds()


async def test_plugin_kind_serves_requests(plugin_installed: None) -> None:
    servers = {"up": {"kind": "openai", "models": {"m": {**FAST, "text": "via plugin"}}}}
    async with stack(servers, provider_kinds={"up": "acme"}) as s, aiohttp.ClientSession() as http:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        async with http.post(f"{s.url}/v1/chat/completions", json=body) as resp:
            assert resp.status == 200
            answer = await resp.json()
    assert answer["choices"][0]["message"]["content"] == "via plugin"
