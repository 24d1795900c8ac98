"""Config sections for health, routing, tiers and output filtering."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import ConfigError, parse_config

BASE: dict[str, Any] = {
    "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}},
    "deployments": {"a": {"provider": "p", "model": "a"}, "b": {"provider": "p", "model": "b"}},
}


def with_(**extra: Any) -> dict[str, Any]:
    return {**BASE, **extra}


def test_defaults() -> None:
    config = parse_config(BASE, env={})
    assert config.health.window == 100 and config.health.min_requests == 20
    assert config.routing.reasoning_header == "x-gateway-reasoning"
    assert config.governance.output is None


def test_tiers_and_hedge_settings_parse() -> None:
    routes = {
        "chat": {
            "deployments": ["a", "b"],
            "strategy": "hedge",
            "hedge_quantile": 0.95,
            "hedge_min_ms": 100,
            "tiers": [
                {"name": "hard", "when": {"reasoning": True}, "deployments": ["b"]},
                {
                    "name": "long",
                    "when": {"min_prompt_tokens": 2000},
                    "deployments": ["b", "a"],
                    "strategy": "race",
                    "k": 2,
                },
            ],
        }
    }
    config = parse_config(with_(routes=routes), env={})
    route = config.routes["chat"]
    assert route.hedge_quantile == 0.95 and route.hedge_min_ms == 100
    assert [t.name for t in route.tiers] == ["hard", "long"]
    assert route.tiers[0].reasoning is True and route.tiers[1].min_prompt_tokens == 2000
    assert route.tiers[1].strategy == "race"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"health": {"window": 0}}, "health.window: must be an integer >= 1"),
        (
            {"health": {"window": 10, "min_requests": 20}},
            "health.min_requests: must be <= health.window",
        ),
        ({"routing": {"key_rpm": 0}}, "routing.key_rpm: must be an integer >= 1"),
        (
            {"routes": {"r": {"deployments": ["a"], "tiers": [{"deployments": ["zz"]}]}}},
            "routes.r.tiers[0].deployments[0]: unknown deployment 'zz'",
        ),
        (
            {
                "routes": {
                    "r": {
                        "deployments": ["a"],
                        "tiers": [{"deployments": ["a"], "when": {"imgs": True}}],
                    }
                }
            },
            "routes.r.tiers[0].when.imgs: unknown key",
        ),
        (
            {"governance": {"output": {"patterns": {"x": "("}}}},
            "governance.output.patterns.x: invalid regular",
        ),
        (
            {"governance": {"output": {"detectors": ["emial"]}}},
            "governance.output.detectors[0]: unknown detector",
        ),
        (
            {"deployments": {"a": {"provider": "p", "model": "a", "rpm": -1}}},
            "deployments.a.rpm: must be",
        ),
    ],
)
def test_problems_name_their_path(extra: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(with_(**extra), env={})
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_check_config_reports_unreachable_tiers(tmp_path: Any) -> None:
    import io

    from gateway.check_config import check_config_main

    path = tmp_path / "gw.yaml"
    path.write_text(
        "providers: {p: {kind: openai, base_url: 'http://127.0.0.1:1/v1'}}\n"
        "deployments: {a: {provider: p, model: a}, b: {provider: p, model: b}}\n"
        "routes:\n  chat:\n    deployments: [a]\n    tiers:\n"
        "      - {name: all, deployments: [a]}\n"
        "      - {name: hard, when: {reasoning: true}, deployments: [b]}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert check_config_main(str(path), out, err) == 1
    assert "routes.chat.tiers[1]: unreachable, tier 'all'" in err.getvalue()


def test_example_config_is_valid() -> None:
    from pathlib import Path

    from gateway.config import load_config
    from gateway.sim.config import load_sim_config

    path = Path(__file__).resolve().parents[2] / "examples" / "local.yaml"
    config = load_config(path, env={})
    assert set(config.routes) == {"chat", "hedged", "reliable"}
    assert set(load_sim_config(path).servers) == {"openai-sim", "anthropic-sim", "gemini-sim"}


def test_key_policies_name_known_keys_only() -> None:
    data = with_(
        auth={"keys": ["a-key"]},
        governance={
            "keys": {"key-2": {"pii": {"email": "block"}}, "key-1": {"data_residency": ["mars"]}}
        },
    )
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    problems = "\n".join(info.value.problems)
    assert "governance.keys.key-2: unknown key id (auth.keys gives key-1)" in problems
    assert "governance.keys.key-1.data_residency[0]: unknown region 'mars'" in problems
