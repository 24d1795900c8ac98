"""Config reload, without sockets: what changed between two configs, and what a gateway
built from the new one keeps of the old one (gateway.reload, Gateway(previous=...))."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import Config, load_config, parse_config
from gateway.reload import ConfigChanges, deployment_identity
from gateway.runtime import Gateway
from gateway.server.live import LiveGateway
from gateway.streaming.accounting import AttemptRecord, RaceRecord

BASE: dict[str, Any] = {
    "listen": {"host": "127.0.0.1", "port": 8080},
    "latency": {"prewarm": {"enabled": False}, "min_samples": 1},
    "providers": {
        "p1": {"kind": "openai", "base_url": "http://127.0.0.1:9001/v1", "api_key": "k1"},
        "p2": {"kind": "openai", "base_url": "http://127.0.0.1:9002/v1", "api_key": "k2"},
    },
    "deployments": {
        "a": {"provider": "p1", "model": "model-a", "price": {"input": 1, "output": 2}},
        "b": {"provider": "p1", "model": "model-b"},
        "c": {"provider": "p2", "model": "model-c"},
    },
    "routes": {"chat": {"strategy": "race", "k": 2, "deployments": ["a", "b", "c"]}},
}


def config(**edits: Any) -> Config:
    """BASE with `edits` applied: deployments__a__model="x" sets, a value None deletes."""
    data = copy.deepcopy(BASE)
    for dotted, value in edits.items():
        *path, last = dotted.split("__")
        node = data
        for part in path:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return parse_config(data, env={})


def test_identity_is_kind_endpoint_model_and_type() -> None:
    base = config()
    endpoint = "http://127.0.0.1:9001/v1"
    assert deployment_identity(base, "a") == ("openai", endpoint, "model-a", "chat")
    # a price, a key or a timeout is not the identity; the model and the endpoint are
    assert deployment_identity(config(deployments__a__price={"input": 9}), "a") == (
        deployment_identity(base, "a")
    )
    assert deployment_identity(config(providers__p1__api_key="other"), "a") == (
        deployment_identity(base, "a")
    )
    assert deployment_identity(config(deployments__a__model="model-z"), "a") != (
        deployment_identity(base, "a")
    )


def test_changes_name_what_was_added_removed_replaced_and_retuned() -> None:
    new = copy.deepcopy(BASE)
    new["deployments"]["a"]["price"] = {"input": 3, "output": 4}  # retuned: state kept
    new["deployments"]["b"]["model"] = "model-b2"  # new identity: state afresh
    del new["deployments"]["c"]
    new["deployments"]["d"] = {"provider": "p1", "model": "model-d"}
    new["routes"]["chat"]["deployments"] = ["a", "b", "d"]
    new["routes"]["other"] = {"deployments": ["a"]}
    new["providers"]["p1"]["api_key"] = "rotated"  # same pool: the key is per request
    new["providers"]["p2"]["base_url"] = "http://127.0.0.1:9999/v1"  # its pool drains
    changes = ConfigChanges.between(config(), parse_config(new, env={}))
    assert changes.deployments_added == ("d",)
    assert changes.deployments_removed == ("c",)
    assert changes.deployments_replaced == ("b",)
    assert changes.deployments_changed == ("a",)
    assert changes.fresh_state == ("c", "b")
    assert changes.routes_added == ("other",)
    assert changes.routes_changed == ("chat",)
    assert changes.providers_changed == ("p1", "p2")
    assert changes.pools_replaced == ("p2",)
    assert changes.restart_required == ()
    summary = changes.summary()
    assert "routes_removed" not in summary and summary["deployments_added"] == ["d"]


def test_a_new_listen_address_needs_a_restart() -> None:
    changes = ConfigChanges.between(config(), config(listen={"host": "127.0.0.1", "port": 9}))
    assert changes.restart_required == ("listen",)
    assert ConfigChanges.between(config(), config()) == ConfigChanges()


def _learn(gw: Gateway, name: str) -> None:
    """Some state for `name`: an open breaker, a latency sample, spend, a model version."""
    for _ in range(30):
        gw.state.health.record_failure(name, 500)
    gw.state.profiles.record_attempt(name, "eu", ttft_s=0.25, outcome="won")
    gw.spend.by_deployment[name] = 1.5
    gw.version_tracker.note(name, f"{name}-v1")


async def test_state_carries_over_for_kept_identities_and_starts_afresh_otherwise() -> None:
    old = Gateway(config())
    for name in ("a", "b", "c"):
        _learn(old, name)
    assert old.state.health.snapshot()["a"]["state"] == "open"
    new_cfg = config(
        deployments__a__price={"input": 5, "output": 6},  # kept identity
        deployments__b__model="model-b2",  # new identity
        deployments__c=None,  # removed
        routes__chat__deployments=["a", "b"],
    )
    new = Gateway(new_cfg, previous=old)

    assert new.state is old.state and not new.owns_state  # no reconnect for nothing
    assert new.metrics is old.metrics
    health = new.state.health.snapshot()
    assert set(health) == {"a", "b"}
    assert health["a"]["state"] == "open" and health["a"]["window"] == 30
    assert health["b"]["state"] == "closed" and health["b"]["window"] == 0
    profiles = new.state.profiles
    assert profiles.histograms("a", "eu", None).events.count > 0
    assert profiles.histograms("b", "eu", None).events.count == 0
    assert new.spend_by_deployment == {"a": 1.5}
    assert new.versions == {"a": "a-v1"}
    assert set(new.weights()) == {"a", "b"}
    assert new.changes is not None and new.changes.fresh_state == ("c", "b")


async def test_unchanged_pools_are_kept_and_changed_ones_are_new() -> None:
    old = Gateway(config())
    new = Gateway(
        config(
            providers__p1__api_key="rotated",
            providers__p2__base_url="http://127.0.0.1:9999/v1",
        ),
        previous=old,
    )
    assert new.pools["p1"] is old.pools["p1"]
    assert new.pools["p2"] is not old.pools["p2"]
    # the adapter is rebuilt with the new key, whatever the pool
    assert new.upstreams.providers["p1"] is not old.upstreams.providers["p1"]
    # speaking HTTP/2 to a provider, or no longer: its pool is a new one of that kind
    newer = Gateway(
        config(providers__p1__api_key="rotated", providers__p2__http2=True), previous=new
    )
    assert newer.pools["p1"] is new.pools["p1"]
    assert newer.pools["p2"] is not new.pools["p2"] and newer.pools["p2"].http2
    # replacing cut connections, or no longer: a new pool too
    newest = Gateway(
        config(
            providers__p1__api_key="rotated",
            providers__p2__http2=True,
            providers__p1__replace_cut_connections=True,
        ),
        previous=newer,
    )
    assert newest.pools["p1"] is not newer.pools["p1"] and newest.pools["p1"]._replace_cut
    assert newest.pools["p2"] is newer.pools["p2"]


@pytest.mark.parametrize(
    "state",
    [{"backend": "memory", "prefix": "other"}, {"backend": "redis", "url": "redis://h:1/0"}],
)
async def test_a_new_state_backend_builds_new_state(state: dict[str, Any]) -> None:
    old = Gateway(config())
    _learn(old, "a")
    new = Gateway(config(state=state), previous=old)
    assert new.owns_state and new.state is not old.state
    assert new.state.health.snapshot()["a"]["window"] == 0
    await new.state.close()


async def test_changed_health_settings_restart_every_breaker() -> None:
    old = Gateway(config())
    _learn(old, "a")
    new = Gateway(config(health={"window": 50, "min_requests": 5}), previous=old)
    assert new.state is old.state
    item = new.state.health.snapshot()["a"]
    assert item["state"] == "closed" and item["window"] == 0
    assert new.state.health.breaker("a").window == 50


async def test_pre_warming_follows_the_new_config_and_keeps_the_active_regions() -> None:
    warm = {"prewarm": {"enabled": True, "connections": 1}, "regions": ["eu", "us"]}
    old = Gateway(config(latency=warm))
    assert old.prewarmer is not None
    old.prewarmer.note_region("us")
    new = Gateway(
        config(latency=warm, deployments__c=None, routes__chat__deployments=["a", "b"]),
        previous=old,
    )
    assert new.prewarmer is not None and new.prewarmer is not old.prewarmer
    assert new.prewarmer.deployments == ["a", "b"]
    assert set(new.prewarmer.targets()) <= {"a", "b"}
    assert "us" in new.prewarmer._regions
    off = Gateway(config(latency={"prewarm": {"enabled": False}}), previous=new)
    assert off.prewarmer is None


async def test_a_late_outcome_of_a_removed_deployment_is_not_recorded() -> None:
    old = Gateway(config())
    new = Gateway(config(deployments__c=None, routes__chat__deployments=["a", "b"]), previous=old)
    # a request that started on the old config ends after the reload
    record = RaceRecord("req-1", "chat", "race", attempts=[AttemptRecord("c", 0.0)])
    record.attempts[0].outcome = "failed"
    new.state.health.on_race_end(record)
    assert "c" not in new.state.health.snapshot()


async def test_budgets_of_unchanged_routes_carry_over() -> None:
    base = copy.deepcopy(BASE)
    base["routes"]["other"] = {"strategy": "race", "k": 2, "deployments": ["a", "b"]}
    old = Gateway(parse_config(base, env={}))
    base["routes"]["other"]["k"] = 1
    new = Gateway(parse_config(base, env={}), previous=old)
    assert new.pipeline.budgets["chat"] is old.pipeline.budgets["chat"]
    assert new.pipeline.budgets["other"] is not old.pipeline.budgets["other"]


async def test_a_gateway_that_cannot_start_is_undone_and_the_old_one_serves(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(BASE))
    serving = Gateway(load_config(path))
    built: list[Gateway] = []

    def setup(gateway: Gateway) -> None:  # an entry point's service that fails to attach
        built.append(gateway)
        raise RuntimeError("no suite")

    live = LiveGateway(serving, str(path), setup)
    new = copy.deepcopy(BASE)
    del new["deployments"]["c"]
    new["routes"]["chat"]["deployments"] = ["a", "b"]
    path.write_text(yaml.safe_dump(new))
    result = await live.reload("test")
    assert result.result == "failed" and result.problems == ("RuntimeError: no suite",)
    assert live.gateway is serving and len(built) == 1
    # the shared state went back to the serving config: "c" has its breaker again
    assert set(serving.state.health.snapshot()) == {"a", "b", "c"}
    await live.close()
