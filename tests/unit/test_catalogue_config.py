"""Deployments inherit model facts from the catalogue; the config overrides them; private
catalogue files add models; check-config warns on deprecations and fails past shutdown."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.catalogue import shipped
from gateway.check_config import check_config_main
from gateway.config import ConfigError, parse_config
from gateway.config.loader import load_config

TODAY = dt.date(2026, 12, 6)


def config(deployments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "providers": {
            "oai": {"kind": "openai", "base_url": "https://api.openai.com/v1"},
            "ant": {"kind": "anthropic", "base_url": "https://api.anthropic.com"},
            "gem": {"kind": "gemini", "base_url": "https://generativelanguage.googleapis.com"},
            "any": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:8000/v1"},
        },
        "deployments": deployments,
        **extra,
    }


def test_deployment_inherits_its_models_facts_by_name_and_kind() -> None:
    c = parse_config(config({"mini": {"provider": "oai", "model": "gpt-4o-mini"}}))
    dep = c.deployments["mini"]
    entry = shipped().get("openai/gpt-4o-mini")
    assert entry is not None
    assert dep.catalogue_id == "openai/gpt-4o-mini"
    assert dep.context_window == entry.context_window
    assert dep.max_output_tokens == entry.max_output_tokens
    assert (dep.price.input, dep.price.output) == (entry.prices.input, entry.prices.output)
    assert dep.price.cached_input == entry.prices.cached_input
    assert dep.capabilities == entry.capabilities
    assert dep.shutdown_date == entry.shutdown_date
    assert dep.facts_from["context_window"] == entry.source


def test_config_values_override_the_catalogue_field_by_field() -> None:
    c = parse_config(
        config(
            {
                "mini": {
                    "provider": "oai",
                    "model": "gpt-4o-mini",
                    "price": {"output": 9.5},
                    "context_window": 1000,
                    "capabilities": {"vision": False},
                    "shutdown_date": None,
                    "deprecated": False,
                }
            }
        )
    )
    dep = c.deployments["mini"]
    entry = shipped().get("openai/gpt-4o-mini")
    assert entry is not None
    assert dep.price.output == 9.5 and dep.price.input == entry.prices.input
    assert dep.context_window == 1000 and dep.max_output_tokens == entry.max_output_tokens
    assert dep.capabilities.vision is False and dep.capabilities.tools is True
    assert dep.shutdown_date is None and dep.deprecated is False
    assert dep.facts_from["price.output"] == "config"
    assert dep.facts_from["price.input"] == entry.source


def test_kind_disambiguates_and_generic_kinds_need_a_unique_match() -> None:
    c = parse_config(
        config(
            {
                "g": {"provider": "gem", "model": "gemini-2.5-flash"},
                "x": {"provider": "any", "model": "gemini-2.5-flash"},  # gemini and vertex
                "y": {"provider": "any", "model": "claude-haiku-4-5"},  # only anthropic has it
                "z": {"provider": "oai", "model": "claude-haiku-4-5"},  # openai has no claude
            }
        )
    )
    d = c.deployments
    assert d["g"].catalogue_id == "gemini/gemini-2.5-flash"
    assert d["x"].catalogue_id is None and d["x"].context_window is None
    assert d["y"].catalogue_id == "anthropic/claude-haiku-4-5"
    assert d["z"].catalogue_id is None and d["z"].price.input == 0.0


def test_explicit_entry_or_none_and_unknown_entry_is_a_problem() -> None:
    c = parse_config(
        config(
            {
                "ft": {
                    "provider": "oai",
                    "model": "ft:gpt-4o-mini:acme::1",
                    "catalogue": "openai/gpt-4o-mini",
                },
                "raw": {"provider": "oai", "model": "gpt-4o-mini", "catalogue": False},
            }
        )
    )
    assert c.deployments["ft"].context_window == 128000
    assert c.deployments["raw"].context_window is None and c.deployments["raw"].price.input == 0
    with pytest.raises(ConfigError) as exc:
        parse_config(
            config({"a": {"provider": "oai", "model": "m", "catalogue": "openai/gpt-4o-mimi"}})
        )
    assert exc.value.problems == [
        "deployments.a.catalogue: no catalogue entry 'openai/gpt-4o-mimi' "
        "(did you mean 'openai/gpt-4o-mini'?)"
    ]


def _write(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


PRIVATE = {
    "models": {
        "acme/support-ft": {
            "extends": "openai/gpt-4o-mini",
            "model": "ft:gpt-4o-mini:acme::support",
            "provider": "openai",
            "price": {"input": 0.3, "output": 1.2},
        },
        "acme/llama-local": {
            "context_window": 8192,
            "max_output_tokens": 2048,
            "capabilities": {"vision": False, "tools": False},
        },
    }
}


def test_private_catalogue_file_adds_models_relative_to_the_config(tmp_path: Path) -> None:
    _write(tmp_path / "private.yaml", PRIVATE)
    data = config(
        {
            "ft": {"provider": "oai", "model": "ft:gpt-4o-mini:acme::support"},
            "local": {"provider": "any", "model": "llama-local"},
        },
        catalogue={"files": ["private.yaml"]},
    )
    c = load_config(_write(tmp_path / "gateway.yaml", data))
    ft, local = c.deployments["ft"], c.deployments["local"]
    assert ft.catalogue_id == "acme/support-ft"
    assert (ft.price.input, ft.price.output, ft.context_window) == (0.3, 1.2, 128000)
    assert ft.price.cached_input == 0.075  # inherited through `extends`
    assert "extends openai/gpt-4o-mini" in ft.facts_from["context_window"]
    assert local.catalogue_id == "acme/llama-local" and local.context_window == 8192
    assert local.capabilities.tools is False and local.capabilities.reasoning is None
    assert c.catalogue.files == ("private.yaml",)


def test_private_file_problems_are_reported_with_their_place(tmp_path: Path) -> None:
    bad = {
        "models": {"acme/x": {"context_window": -1, "price": {"inputs": 1}, "extends": "no/such"}}
    }
    path = _write(tmp_path / "bad.yaml", bad)
    data = config({}, catalogue={"files": [str(path), str(tmp_path / "missing.yaml")]})
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    problems = exc.value.problems
    assert problems[0].startswith("catalogue.files[0]: ") and "models.acme/x.extends" in problems[0]
    assert problems[1].startswith("catalogue.files[1]: cannot read")


def _check(tmp_path: Path, deployments: dict[str, Any]) -> tuple[int, str, str]:
    path = _write(tmp_path / "gateway.yaml", config(deployments))
    out, err = io.StringIO(), io.StringIO()
    code = check_config_main(str(path), out=out, err=err, today=TODAY)
    return code, out.getvalue(), err.getvalue()


def test_check_config_warns_on_deprecated_and_soon_shut_down_models(tmp_path: Path) -> None:
    code, out, err = _check(
        tmp_path,
        {
            "later": {"provider": "oai", "model": "m1", "shutdown_date": "2027-06-01"},
            "soon": {"provider": "oai", "model": "m2", "shutdown_date": "2026-12-20"},
            "flagged": {"provider": "oai", "model": "m3", "deprecated": True},
            "fine": {"provider": "oai", "model": "m4"},
        },
    )
    assert code == 0 and out.startswith("config OK")
    assert err.splitlines() == [  # in file order (yaml.safe_dump sorts the keys)
        "warning: deployments.flagged: model 'm3' is deprecated",
        "warning: deployments.later: model 'm1' is deprecated and shuts down on 2027-06-01 "
        "(in 177 days)",
        "warning: deployments.soon: model 'm2' is deprecated and shuts down on 2026-12-20 "
        "(in 14 days)",
    ]


def test_check_config_fails_on_a_model_past_its_shutdown(tmp_path: Path) -> None:
    code, out, err = _check(
        tmp_path, {"old": {"provider": "oai", "model": "m1", "shutdown_date": "2026-12-06"}}
    )
    assert code == 1 and out == ""
    assert "deployments.old: model 'm1' was shut down on 2026-12-06" in err


def test_auto_regress_section_resolves_paths_and_check_config_loads_the_suite(
    tmp_path: Path,
) -> None:
    data = config({}, auto_regress={"suite": "suite.yaml", "policy": "quarantine"})
    path = _write(tmp_path / "gateway.yaml", data)
    cfg = load_config(path).auto_regress
    assert cfg is not None and cfg.suite == str(tmp_path / "suite.yaml")
    assert (cfg.policy, cfg.min_interval_s, cfg.reports_dir) == ("quarantine", 3600.0, None)
    out, err = io.StringIO(), io.StringIO()
    assert check_config_main(str(path), out=out, err=err, today=TODAY) == 1
    assert "auto_regress.suite: " in err.getvalue() and "cannot read" in err.getvalue()
    _write(tmp_path / "suite.yaml", {"prompts": [{"id": "p", "prompt": "hi"}]})
    assert check_config_main(str(path), out=out, err=err, today=TODAY) == 0
    with pytest.raises(ConfigError) as exc:
        parse_config(config({}, auto_regress={"suite": "s.yaml", "policy": "panic"}))
    assert exc.value.problems == [
        "auto_regress.policy: must be one of alert, quarantine, got 'panic'"
    ]


def test_the_running_gateway_warns_at_start_and_exports_days_to_shutdown() -> None:
    from structlog.testing import capture_logs

    from gateway.runtime import Gateway

    noon = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC).timestamp()
    c = parse_config(
        config(
            {
                "soon": {"provider": "oai", "model": "m1", "shutdown_date": "2026-12-20"},
                "fine": {"provider": "oai", "model": "m2"},
            }
        )
    )
    gateway = Gateway(c, clock=lambda: noon)
    with capture_logs() as logs:
        gateway.warn_deprecations()
    [warning] = logs
    assert (warning["event"], warning["deployment"], warning["state"]) == (
        "model_deprecated",
        "soon",
        "shutdown_soon",
    )
    assert warning["days_left"] == 14 and warning["log_level"] == "warning"
    text = gateway.metrics.render().decode()
    assert 'gateway_model_shutdown_days{deployment="soon"} 14.0' in text
    assert 'gateway_model_shutdown_days{deployment="fine"}' not in text
