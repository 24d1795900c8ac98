"""Regressions that run themselves: two gateway instances share Redis; a simulated model
version change seen by both runs the suite once (a lease), writes the report files, and
with `policy: quarantine` takes the deployment out of races on both instances until an
admin releases it. Needs Redis (skipped without it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from gateway.config import parse_config
from gateway.regress.auto import AutoRegress, attach
from gateway.runtime import Gateway
from gateway.server.app import start_server
from gateway.sim.config import parse_sim_config
from gateway.sim.server import SimCluster
from tests.redis_support import REDIS_URL, redis_with_prefix

FAST = {"ttft_ms": 5, "itl_ms": 0, "tokens": 5}
PARIS = "The capital of France is Paris."
SUITE = {
    "prompts": [
        {"id": "capital", "prompt": "Capital of France?", "checks": [{"contains": "Paris"}]}
    ]
}
ADMIN = {"authorization": "Bearer admin-secret"}


class Instance:
    def __init__(
        self, gateway: Gateway, auto: AutoRegress, runner: web.AppRunner, url: str
    ) -> None:
        self.gateway = gateway
        self.auto = auto
        self.runner = runner
        self.url = url

    async def ask(self, model: str = "chat") -> str:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.url}/v1/chat/completions", json=body) as resp:
                assert resp.status == 200, await resp.text()
                return resp.headers["x-gateway-deployment"]

    async def admin(self, method: str, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as http:
            async with http.request(method, f"{self.url}{path}", headers=ADMIN) as resp:
                if resp.content_type == "application/json":
                    return resp.status, await resp.json()
                return resp.status, await resp.text()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[SimCluster, list[Instance], Path]]:
    sim_config, problems = parse_sim_config(
        {
            "seed": 3,
            "servers": {
                "oa": {
                    "kind": "openai",
                    "models": {
                        "alpha": {**FAST, "text": PARIS, "model_version": "alpha-v1"},
                        "beta": {**FAST, "text": PARIS},
                    },
                }
            },
        }
    )
    assert sim_config is not None, problems
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(SUITE))
    async with redis_with_prefix("autoregress") as (_, prefix):
        sim = SimCluster(sim_config)
        await sim.start()
        instances: list[Instance] = []
        try:
            data = {
                "admin": {"key": "admin-secret"},
                "state": {"backend": "redis", "url": REDIS_URL, "prefix": prefix},
                "latency": {"prewarm": {"enabled": False}},
                "providers": {
                    "oa": {"kind": "openai", "base_url": sim.base_url("oa"), "api_key": "k"}
                },
                "deployments": {
                    "alpha": {"provider": "oa", "model": "alpha", "price": {"input": 1.0}},
                    "beta": {"provider": "oa", "model": "beta"},
                },
                "routes": {"chat": {"strategy": "fallback", "deployments": ["alpha", "beta"]}},
                "routing": {"allow_direct_deployments": True},  # the test names deployments
                "auto_regress": {
                    "suite": str(tmp_path / "suite.yaml"),
                    "policy": "quarantine",
                    "reports_dir": str(tmp_path / "reports"),
                    "min_interval_s": 0,
                },
            }
            for _ in range(2):
                gateway = Gateway(parse_config(data, env={}))
                auto = attach(gateway)  # what `serve` does
                assert auto is not None and gateway.regressions is auto
                runner, url = await start_server(gateway, "127.0.0.1", 0)
                instances.append(Instance(gateway, auto, runner, url))
            yield sim, instances, tmp_path
        finally:
            for instance in instances:
                await instance.runner.cleanup()
            await sim.stop()


async def test_a_version_change_runs_the_suite_once_and_quarantines_on_both(
    env: tuple[SimCluster, list[Instance], Path],
) -> None:
    sim, (a, b), tmp = env
    for instance in (a, b):
        assert await instance.ask() == "alpha"  # first sighting of alpha-v1: nothing runs
    assert a.auto.reports == {} and b.auto.reports == {}

    sim.configure("oa", "alpha", model_version="alpha-v2", text="The capital is Lyon.")
    for instance in (a, b):  # both see the change (named alone: quarantine cannot hide it)
        assert await instance.ask("alpha") == "alpha"
        await instance.auto.wait_idle()

    ran = [i for i in (a, b) if "alpha" in i.auto.reports]
    assert len(ran) == 1, "one run per version across instances"
    other = b if ran[0] is a else a
    run = ran[0].auto.reports["alpha"]
    assert (run["version"], run["previous_version"]) == ("alpha-v2", "alpha-v1")
    assert (run["result"], run["action"]) == ("regressions", "quarantined")
    assert any("check_failed: capital" in flag for flag in run["flags"])
    suite_calls = [r for r in sim.log.records if r.model == "alpha"]
    assert len(suite_calls) == 5  # 2 + 2 client requests, 1 suite run
    folder = tmp / "reports" / "alpha" / "alpha-v2"
    assert (folder / "report.json").exists() and (folder / "report.md").exists()
    assert [str(p) for p in (folder / "report.json", folder / "report.md")] == run["files"][:2]
    ran_metrics = ran[0].gateway.metrics.render().decode()
    assert (
        'gateway_auto_regress_runs_total{deployment="alpha",result="regressions"} 1.0'
        in ran_metrics
    )
    assert 'gateway_auto_regress_cost_usd_total{deployment="alpha"}' in ran_metrics
    assert 'gateway_deployment_quarantined{deployment="alpha"} 1.0' in ran_metrics
    other_metrics = other.gateway.metrics.render().decode()
    assert (
        'gateway_auto_regress_runs_total{deployment="alpha",result="leased_elsewhere"} 1.0'
        in other_metrics
    )

    await other.gateway.quarantine.refresh()  # what its refresh loop does every 2 s
    for instance in (a, b):
        assert await instance.ask() == "beta"  # alpha is out of races on both
        assert await instance.ask("alpha") == "alpha"  # named alone, it still serves

    status, view = await a.admin("GET", "/admin/regressions")
    assert status == 200 and view["policy"] == "quarantine"
    assert view["quarantined"]["alpha"]["version"] == "alpha-v2"
    status, markdown = await ran[0].admin("GET", "/admin/regressions/alpha?format=markdown")
    assert status == 200 and markdown.startswith("# Regression report")
    status, report = await ran[0].admin("GET", "/admin/regressions/alpha")
    assert status == 200 and report["status"] == "regressions"

    status, body = await b.admin("POST", "/admin/deployments/alpha/release")
    assert (status, body) == (200, {"deployment": "alpha", "released": True})
    await a.gateway.quarantine.refresh()
    for instance in (a, b):
        assert await instance.ask() == "alpha"


async def test_a_passing_run_releases_and_the_interval_limits_runs(
    env: tuple[SimCluster, list[Instance], Path],
) -> None:
    sim, (a, _), _ = env
    await a.ask()
    await a.gateway.quarantine.add("alpha", {"by": "test"})
    sim.configure("oa", "alpha", model_version="alpha-v3")  # still answers Paris
    assert await a.ask("alpha") == "alpha"
    await a.auto.wait_idle()
    run = a.auto.reports["alpha"]
    assert (run["result"], run["action"]) == ("passed", "released")
    assert "alpha" not in a.gateway.quarantine

    a.auto.cfg = replace(a.auto.cfg, min_interval_s=3600)
    sim.configure("oa", "alpha", model_version="alpha-v4")
    await a.ask("alpha")
    await a.auto.wait_idle()
    assert a.auto.reports["alpha"]["version"] == "alpha-v3"  # v4 came too soon
    text = a.gateway.metrics.render().decode()
    assert 'gateway_auto_regress_runs_total{deployment="alpha",result="rate_limited"} 1.0' in text
