"""Config of embeddings: deployment type and batch size, one type per route, no race or
hedge over embeddings, and adapters that cannot embed (each problem at its path)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from gateway.check_config import check_config_main, embedding_problems
from gateway.config import ConfigError, parse_config

PROVIDERS = {
    "oa": {"kind": "openai", "base_url": "http://o.test/v1"},
    "an": {"kind": "anthropic", "base_url": "http://a.test"},
    "ge": {"kind": "gemini", "base_url": "http://g.test"},
}
DEPLOYMENTS: dict[str, Any] = {
    "emb": {"provider": "oa", "model": "text-embedding-3-small", "type": "embedding"},
    "gem": {"provider": "ge", "model": "gemini-embedding-001", "type": "embedding"},
    "gpt": {"provider": "oa", "model": "gpt-4o-mini"},
}


def problems(routes: dict[str, Any], deployments: dict[str, Any] | None = None) -> list[str]:
    data = {"providers": PROVIDERS, "deployments": deployments or DEPLOYMENTS, "routes": routes}
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    return info.value.problems


def test_type_and_batch_size_are_read_with_defaults() -> None:
    deployments = {**DEPLOYMENTS, "emb": {**DEPLOYMENTS["emb"], "batch_size": 500}}
    routes = {"vectors": {"strategy": "weighted", "deployments": ["emb", "gem"]}}
    config = parse_config(
        {"providers": PROVIDERS, "deployments": deployments, "routes": routes}, env={}
    )
    assert config.deployments["emb"].type == "embedding"
    assert config.deployments["emb"].batch_size == 500
    assert config.deployments["gem"].batch_size is None
    assert config.deployments["gpt"].type == "chat"
    assert config.routes["vectors"].strategy == "weighted"
    assert config.limits.max_embedding_inputs == 2048


@pytest.mark.parametrize("strategy", ["race", "hedge"])
def test_a_race_or_hedge_of_embeddings_is_refused(strategy: str) -> None:
    assert problems({"v": {"strategy": strategy, "deployments": ["emb", "gem"]}}) == [
        f"routes.v.strategy: '{strategy}' cannot serve embedding deployments: there is no "
        "first token to race on (use fallback or weighted)"
    ]


def test_a_route_mixing_chat_and_embeddings_is_refused_at_the_odd_one() -> None:
    assert problems({"mixed": {"deployments": ["emb", "gem", "gpt"]}}) == [
        "routes.mixed.deployments[2]: 'gpt' is a chat deployment but deployments[0] is "
        "embedding; a route serves one type (chat or embedding)"
    ]


def test_tiers_are_held_to_the_same_rules() -> None:
    route = {
        "deployments": ["emb"],
        "tiers": [
            {"name": "big", "deployments": ["gem"], "strategy": "race", "k": 1},
            {"name": "chatty", "deployments": ["gpt"]},
        ],
    }
    assert problems({"t": route}) == [
        "routes.t.tiers[0].strategy: 'race' cannot serve embedding deployments: there is no "
        "first token to race on (use fallback or weighted)",
        "routes.t.tiers[1].deployments[0]: 'gpt' is a chat deployment but deployments[0] is "
        "embedding; a route serves one type (chat or embedding)",
    ]


def test_deployment_level_problems() -> None:
    deployments = {
        **DEPLOYMENTS,
        "emb": {**DEPLOYMENTS["emb"], "price": {"input": 0.02, "output": 0.1}},
        "gpt": {**DEPLOYMENTS["gpt"], "batch_size": 8},
        "odd": {"provider": "oa", "model": "x", "type": "rerank"},
        "zero": {**DEPLOYMENTS["emb"], "batch_size": 0},
    }
    found = problems({}, deployments)
    assert (
        "deployments.emb.price.output: embedding deployments are priced by input tokens only; "
        "omit price.output" in found
    )
    assert (
        "deployments.gpt.batch_size: is for embedding deployments only (type: embedding)" in found
    )
    assert any(p.startswith("deployments.odd.type: ") and "embedding" in p for p in found)
    assert any(p.startswith("deployments.zero.batch_size: ") for p in found)


def test_check_config_refuses_embeddings_on_an_adapter_without_them(tmp_path: Path) -> None:
    deployments = {
        **DEPLOYMENTS,
        "claude-emb": {"provider": "an", "model": "c", "type": "embedding"},
    }
    config = parse_config({"providers": PROVIDERS, "deployments": deployments}, env={})
    assert embedding_problems(config) == [
        "deployments.claude-emb.type: provider 'an' (kind 'anthropic') has no embeddings API"
    ]
    path = tmp_path / "gw.yaml"
    path.write_text(
        "providers:\n  an: {kind: anthropic, base_url: 'http://a.test'}\n"
        "deployments:\n  e: {provider: an, model: c, type: embedding}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert check_config_main(str(path), out, err) == 1
    assert (
        "deployments.e.type: provider 'an' (kind 'anthropic') has no embeddings API"
        in err.getvalue()
    )
