"""The LiteLLM converter (on a small LiteLLM-shaped fixture), the refresh script's wheel
reading, and the shipped catalogue file."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gateway.catalogue import shipped
from gateway.catalogue.convert import convert
from gateway.catalogue.store import parse_models

ROOT = Path(__file__).resolve().parents[2]

LITELLM: dict[str, Any] = {
    "sample_spec": {"litellm_provider": "one of ...", "max_input_tokens": "max input tokens"},
    "gpt-4o-mini": {
        "litellm_provider": "openai",
        "mode": "chat",
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
        "input_cost_per_token": 1.5e-07,
        "output_cost_per_token": 6e-07,
        "cache_read_input_token_cost": 7.5e-08,
        "input_cost_per_token_batches": 7.5e-08,
        "output_cost_per_token_batches": 3e-07,
        "input_cost_per_token_priority": 2.5e-07,
        "output_cost_per_token_priority": 1e-06,
        "supports_vision": True,
        "supports_function_calling": True,
        "supports_response_schema": True,
        "deprecation_date": "2027-01-14",
        "successor_model": "gpt-next",
        "source": "https://developers.openai.com/api/docs/pricing",
    },
    "ft:gpt-4o-mini": {"litellm_provider": "openai", "mode": "chat", "max_input_tokens": 1},
    "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation"},
    "claude-haiku-4-5": {
        "litellm_provider": "anthropic",
        "mode": "chat",
        "max_input_tokens": 200000,
        "max_output_tokens": 64000,
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 5e-06,
        "supports_reasoning": True,
        "supports_vision": True,
    },
    "deepseek-chat": {
        "litellm_provider": "deepseek",
        "mode": "chat",
        "max_input_tokens": 64000,
        "input_cost_per_token": 9e-07,
    },
    "deepseek/deepseek-chat": {
        "litellm_provider": "deepseek",
        "mode": "chat",
        "max_input_tokens": 131072,
        "input_cost_per_token": 2.8e-07,
    },
    "gemini/gemini-2.5-flash": {
        "litellm_provider": "gemini",
        "mode": "chat",
        "max_input_tokens": 1048576,
        "supports_audio_input": True,
        "source": "not a url",
    },
    "together-ai-4.1b-8b": {"litellm_provider": "together_ai", "mode": "chat"},
    "together_ai/meta-llama/Llama-3.3-70B": {"litellm_provider": "together_ai", "mode": "chat"},
    "dashscope/qwen-max": {"litellm_provider": "dashscope", "mode": "chat"},
    "bedrock/anthropic.claude": {"litellm_provider": "bedrock", "mode": "chat"},
}


def converted() -> dict[str, Any]:
    return convert(
        LITELLM, package="litellm", version="9.9.9", path="x.json", generated=dt.date(2026, 1, 2)
    )


def test_keeps_chat_models_of_supported_families_under_provider_ids() -> None:
    assert sorted(converted()["models"]) == [
        "anthropic/claude-haiku-4-5",
        "deepseek/deepseek-chat",
        "gemini/gemini-2.5-flash",
        "openai/gpt-4o-mini",
        "qwen/qwen-max",
        "together/meta-llama/Llama-3.3-70B",
    ]


def test_prices_per_million_tiers_capabilities_lifecycle_and_source() -> None:
    entry = converted()["models"]["openai/gpt-4o-mini"]
    assert entry == {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "context_window": 128000,
        "max_output_tokens": 16384,
        "price": {
            "input": 0.15,
            "output": 0.6,
            "cached_input": 0.075,
            "batch_input": 0.075,
            "batch_output": 0.3,
            "priority_input": 0.25,
            "priority_output": 1.0,
        },
        "capabilities": {
            "vision": True,
            "audio_input": False,
            "audio_output": False,
            "tools": True,
            "structured_output": True,
            "reasoning": False,
        },
        "deprecated": True,
        "shutdown_date": "2027-01-14",
        "successor": "gpt-next",
        "source": "litellm 9.9.9:gpt-4o-mini",
        "reference": "https://developers.openai.com/api/docs/pricing",
    }


def test_prefixed_key_wins_over_the_bare_duplicate_and_bad_references_are_dropped() -> None:
    models = converted()["models"]
    assert models["deepseek/deepseek-chat"]["context_window"] == 131072
    assert models["deepseek/deepseek-chat"]["source"] == "litellm 9.9.9:deepseek/deepseek-chat"
    assert "reference" not in models["gemini/gemini-2.5-flash"]
    assert models["gemini/gemini-2.5-flash"]["capabilities"]["audio_input"] is True
    assert "price" not in models["qwen/qwen-max"]  # no figures: none invented


def test_file_records_its_source_version_and_date_and_reads_back() -> None:
    data = converted()
    assert data["schema_version"] == 1 and data["generated"] == "2026-01-02"
    (source,) = data["sources"]
    assert source["package"] == "litellm" and source["version"] == "9.9.9"
    assert "MIT" in source["license"]
    entries, problems = parse_models(json.loads(json.dumps(data)), "test")
    assert problems == []
    mini = next(e for e in entries if e.id == "openai/gpt-4o-mini")
    assert mini.shutdown_date == dt.date(2027, 1, 14) and mini.prices.batch_output == 0.3


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "refresh_catalogue", ROOT / "scripts" / "refresh_catalogue.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_reads_data_and_licence_from_the_wheel(tmp_path: Path) -> None:
    script = _script()
    wheel = tmp_path / "litellm-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(script.DATA_PATH, json.dumps(LITELLM))
        zf.writestr("litellm-9.9.9.dist-info/licenses/LICENSE", "MIT License\nBerri AI\n")
    data, licence = script.read_wheel(wheel, "9.9.9")
    assert data == LITELLM and licence.startswith("MIT License")


def test_script_refuses_a_wheel_without_licence(tmp_path: Path) -> None:
    script = _script()
    wheel = tmp_path / "litellm-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(script.DATA_PATH, "{}")
    with pytest.raises(SystemExit):
        script.read_wheel(wheel, "9.9.9")


def test_shipped_catalogue_is_pinned_sourced_and_licensed() -> None:
    catalogue = shipped()
    (source,) = catalogue.sources
    assert source["package"] == "litellm" and source["version"] == _script().LITELLM_VERSION
    assert dt.date.fromisoformat(source["generated"])
    licence = (ROOT / "gateway" / "catalogue" / "LICENSE-litellm.txt").read_text()
    assert "MIT License" in licence and "Berri AI" in licence
    families = {e.provider for e in catalogue.entries()}
    assert {"openai", "anthropic", "gemini", "mistral", "deepseek", "groq"} <= families
    assert all(e.source.startswith(source["name"]) for e in catalogue.entries())
