"""`race-gateway regress` end to end against the simulators: in-process gateway core,
real sockets, baselines on disk (and in Redis), exit codes, reports and charts."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from gateway.regress import amain
from gateway.regress.baseline import RedisBaselineStore
from gateway.sim.config import parse_sim_config
from gateway.sim.server import SimCluster
from tests.stack import build_configs

FAST = {"ttft_ms": 10, "itl_ms": 0, "tokens": 5}
CAPITAL = "The capital of France is Paris."
SERVERS: dict[str, dict[str, Any]] = {
    "oa": {
        "kind": "openai",
        "models": {
            "alpha": {**FAST, "text": CAPITAL, "model_version": "alpha-2024-01"},
            "jsonbot": {**FAST, "text": '{"city": "Oslo", "temp_c": 3}'},
        },
    },
    "an": {
        "kind": "anthropic",
        "models": {"claude": {**FAST, "text": CAPITAL, "model_version": "claude-v1"}},
    },
}
PRICES = {
    "alpha": {"price": {"input": 1.0, "output": 2.0}},
    "claude": {"price": {"input": 3.0, "output": 15.0}},
    "jsonbot": {"price": {"input": 1.0, "output": 1.0}},
}
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
SUITE: dict[str, Any] = {
    "targets": ["alpha", "claude"],
    "params": {"temperature": 0},
    "prompts": [
        {
            "id": "capital",
            "prompt": "What is the capital of France?",
            "checks": [{"contains": "Paris"}, {"regex": "^The capital"}, {"max_tokens": 50}],
        },
        {
            "id": "weather",
            "prompt": "What is the weather in Oslo?",
            "params": {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA},
                    }
                ]
            },
            "checks": [{"tool_call": {"name": "get_weather", "arguments_schema": WEATHER_SCHEMA}}],
        },
        {
            "id": "json",
            "prompt": "Answer in JSON: city and temperature.",
            "targets": ["jsonbot"],
            "checks": [
                {
                    "json_schema": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
                        "required": ["city", "temp_c"],
                    }
                }
            ],
        },
    ],
}


@dataclass
class Env:
    sim: SimCluster
    dir: Path
    config: Path
    suite: Path
    baseline: Path

    def args(self, *extra: str) -> list[str]:
        return [
            "--suite",
            str(self.suite),
            "--config",
            str(self.config),
            "--baseline",
            str(self.baseline),
            "--no-progress",
            # latency is asserted only where a test slows a simulator down on purpose
            "--ttft-min-ms",
            "500",
            *extra,
        ]

    def write_suite(self, suite: dict[str, Any]) -> None:
        self.suite.write_text(yaml.safe_dump(suite), encoding="utf-8")


def gateway_config(sim: SimCluster, **extra: Any) -> dict[str, Any]:
    _, gw = build_configs(SERVERS, deployments=PRICES, latency={"prewarm": {"enabled": False}})
    gw["providers"] = {
        name: {"kind": server["kind"], "base_url": sim.base_url(name), "api_key": "sim-key"}
        for name, server in SERVERS.items()
    }
    gw.update(extra)
    return gw


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    sim_data, _ = build_configs(SERVERS)
    config, problems = parse_sim_config(sim_data)
    assert config is not None, problems
    async with SimCluster(config) as sim:
        e = Env(
            sim,
            tmp_path,
            tmp_path / "gateway.yaml",
            tmp_path / "suite.yaml",
            tmp_path / "baseline.json",
        )
        e.config.write_text(yaml.safe_dump(gateway_config(sim)), encoding="utf-8")
        e.write_suite(SUITE)
        yield e


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def flags_of(report: dict[str, Any], prompt: str, target: str) -> list[str]:
    cell = next(c for c in report["matrix"] if c["prompt"] == prompt and c["target"] == target)
    return [f["kind"] for f in cell["flags"]]


async def test_clean_run_exits_0_and_writes_the_baseline(env: Env) -> None:
    out = env.dir / "out"
    code = await amain(
        env.args(
            "--json",
            str(out / "report.json"),
            "--markdown",
            str(out / "report.md"),
            "--charts",
            str(out / "charts"),
            "--repeat",
            "2",
        )
    )
    assert code == 0
    baseline = read_json(env.baseline)
    capital = baseline["results"]["alpha"]["capital"]
    assert capital["model_version"] == "alpha-2024-01"
    assert capital["checks"] == {"contains": True, "regex": True, "max_tokens": True}
    assert capital["output_sample"] == CAPITAL and capital["runs"] == 2
    assert capital["cost_usd"] > 0 and capital["ttft_p50_ms"] > 0
    assert baseline["results"]["claude"]["capital"]["model_version"] == "claude-v1"
    assert baseline["results"]["jsonbot"]["json"]["checks"] == {"json_schema": True}
    assert baseline["deployments"]["alpha"]["model_version"] == "alpha-2024-01"

    report = read_json(out / "report.json")
    assert report["status"] == "clean" and report["exit_code"] == 0
    assert report["summary"]["cells"] == 5 and report["summary"]["passed"] == 5
    assert report["targets"] == ["alpha", "claude", "jsonbot"]
    weather = next(c for c in report["matrix"] if c["prompt"] == "weather")
    assert weather["checks"][0]["passed"] and weather["output_hash"].startswith("sha256:")
    assert weather["runs"][0]["finish_reason"] == "tool_calls"
    markdown = (out / "report.md").read_text()
    assert "| capital |" in markdown and "✅ clean" in markdown
    assert "![ttft](charts/ttft.png)" in markdown
    for chart in ("ttft.png", "cost.png"):
        assert (out / "charts" / chart).read_bytes()[:4] == b"\x89PNG"

    # the same answers again: still clean, the baseline is left as it was
    before = env.baseline.read_bytes()
    assert await amain(env.args()) == 0
    assert env.baseline.read_bytes() == before


async def test_changed_answer_fails_contains_check(env: Env) -> None:
    assert await amain(env.args()) == 0
    env.sim.configure("oa", "alpha", text="Lyon is a city in France.")
    report_path = env.dir / "report.json"
    assert await amain(env.args("--json", str(report_path))) == 1
    report = read_json(report_path)
    flags = flags_of(report, "capital", "alpha")
    assert "check_regressed" in flags and "drift" in flags
    cell = next(c for c in report["matrix"] if c["prompt"] == "capital" and c["target"] == "alpha")
    contains = next(c for c in cell["checks"] if c["name"] == "contains")
    assert not contains["passed"] and "missing 'Paris'" in contains["detail"]
    assert flags_of(report, "capital", "claude") == []
    # a failing run never overwrites what last passed
    assert read_json(env.baseline)["results"]["alpha"]["capital"]["output_sample"] == CAPITAL
    # ignoring the flags turns them into notes
    args = env.args("--ignore", "check_regressed", "--ignore", "drift")
    assert await amain(args) == 0


async def test_slower_simulator_trips_latency_flag(env: Env) -> None:
    assert await amain(env.args()) == 0
    env.sim.configure("an", "claude", ttft_ms=400)
    report_path = env.dir / "report.json"
    assert await amain(env.args("--json", str(report_path), "--ttft-min-ms", "100")) == 1
    report = read_json(report_path)
    for prompt in ("capital", "weather"):
        flags = flags_of(report, prompt, "claude")
        assert "ttft_p50" in flags and "ttft_p95" in flags
        assert flags_of(report, prompt, "alpha") == []
    # below the absolute floor: not flagged
    assert await amain(env.args("--ttft-min-ms", "1000")) == 0
    # accepted: the slower model becomes the baseline
    args = env.args("--update-baseline", "--ttft-min-ms", "100")
    assert await amain(args) == 1  # still flagged on this run
    assert await amain(env.args("--ttft-min-ms", "100")) == 0


async def test_model_version_change_is_flagged(env: Env) -> None:
    assert await amain(env.args()) == 0
    env.sim.configure("oa", "alpha", model_version="alpha-2024-06")
    report_path = env.dir / "report.json"
    markdown = env.dir / "report.md"
    assert await amain(env.args("--json", str(report_path), "--markdown", str(markdown))) == 1
    report = read_json(report_path)
    assert "model_version" in flags_of(report, "capital", "alpha")
    assert report["version_changes"] == [
        {"deployment": "alpha", "baseline": "alpha-2024-01", "current": "alpha-2024-06"}
    ]
    assert "`alpha-2024-01` → `alpha-2024-06`" in markdown.read_text()
    assert await amain(env.args("--update-baseline")) == 1
    assert read_json(env.baseline)["deployments"]["alpha"]["model_version"] == "alpha-2024-06"
    assert await amain(env.args()) == 0


async def test_route_target_and_retry_on_retryable_errors(env: Env) -> None:
    config = gateway_config(
        env.sim, routes={"chat": {"strategy": "fallback", "deployments": ["alpha", "claude"]}}
    )
    env.config.write_text(yaml.safe_dump(config), encoding="utf-8")
    env.write_suite({"targets": ["chat", "deployment:claude"], "prompts": [SUITE["prompts"][0]]})
    env.sim.configure("an", "claude", error_rate_503=1.0)
    report_path = env.dir / "report.json"
    code = await amain(env.args("--json", str(report_path), "--retries", "1"))
    assert code == 1
    report = read_json(report_path)
    route = next(c for c in report["matrix"] if c["target"] == "chat")
    assert route["passed"] and route["deployment"] == "alpha"
    direct = next(c for c in report["matrix"] if c["target"] == "deployment:claude")
    assert flags_of(report, "capital", "deployment:claude") == ["error"]
    assert direct["runs"][0]["tries"] == 2 and "503" in direct["errors"][0]
    baseline = read_json(env.baseline)
    assert "chat" in baseline["results"] and "deployment:claude" not in baseline["results"]


async def test_non_retryable_errors_are_not_retried(env: Env) -> None:
    config = gateway_config(env.sim)
    config["deployments"]["ghost"] = {"provider": "oa", "model": "no-such-model"}
    env.config.write_text(yaml.safe_dump(config), encoding="utf-8")
    env.write_suite({"targets": ["alpha", "ghost"], "prompts": [SUITE["prompts"][0]]})
    report_path = env.dir / "report.json"
    assert await amain(env.args("--json", str(report_path))) == 1
    report = read_json(report_path)
    ghost = next(c for c in report["matrix"] if c["target"] == "ghost")
    assert flags_of(report, "capital", "ghost") == ["error"]
    assert ghost["runs"][0]["tries"] == 1 and "404" in ghost["errors"][0]
    assert ghost["checks"][0]["runs"] == 0  # no answer: checks did not run
    assert flags_of(report, "capital", "alpha") == []


async def test_reports_on_stdout_and_unwritable_paths(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    env.write_suite({"targets": ["alpha"], "prompts": [SUITE["prompts"][0]]})
    assert await amain(env.args("--json", "-")) == 0
    out, err = capsys.readouterr()
    assert orjson.loads(out)["status"] == "clean"
    assert "status: clean (exit 0)" in err  # the summary moves to stderr
    assert await amain(env.args("--markdown", "/proc/no/such/dir/report.md")) == 2
    assert "cannot write report /proc/no/such/dir/report.md" in capsys.readouterr().err


async def test_nothing_reachable_exits_2(env: Env) -> None:
    for model in ("alpha", "jsonbot"):
        env.sim.configure("oa", model, error_rate_500=1.0)
    env.sim.configure("an", "claude", error_rate_500=1.0)
    report_path = env.dir / "report.json"
    assert await amain(env.args("--json", str(report_path), "--retries", "0")) == 2
    report = read_json(report_path)
    assert report["status"] == "error" and "nothing reachable" in report["problems"][0]
    assert not env.baseline.exists()


async def test_bad_suite_exits_2_with_path_named_message(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {"prompts": [{"id": "x", "prompt": "hi", "checks": [{"regex": "(unclosed"}]}]}
    env.write_suite(bad)
    assert await amain(env.args()) == 2
    err = capsys.readouterr().err
    assert "prompts[0].checks[0].regex: invalid regular expression" in err

    env.write_suite({"targets": ["alpah"], "prompts": [{"id": "x", "prompt": "hi"}]})
    assert await amain(env.args()) == 2
    err = capsys.readouterr().err
    assert "targets[0]: unknown target 'alpah'" in err and "did you mean 'alpha'" in err


async def test_bad_config_and_arguments_exit_2(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    env.config.write_text("deployments: {x: {provider: nope, model: m}}\n", encoding="utf-8")
    assert await amain(env.args()) == 2
    assert "deployments.x.provider" in capsys.readouterr().err
    assert await amain(["--suite", str(env.suite), "--repeat", "0"]) == 2
    assert await amain(["--suite", str(env.suite)]) == 2  # no config anywhere
    assert "--config" in capsys.readouterr().err


async def test_redis_baseline_when_state_backend_is_redis(env: Env) -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    prefix = f"test-regress-{uuid.uuid4().hex[:10]}"
    store = RedisBaselineStore(url, prefix)
    try:
        await asyncio.wait_for(store.load(), 2)
    except Exception as exc:
        pytest.skip(f"Redis not reachable at {url}: {exc!r}")
    state = {"backend": "redis", "url": url, "prefix": prefix}
    env.config.write_text(yaml.safe_dump(gateway_config(env.sim, state=state)), encoding="utf-8")
    args = ["--suite", str(env.suite), "--config", str(env.config), "--no-progress"]
    try:
        assert await amain(args) == 0
        baseline = await store.load()
        assert baseline is not None
        assert baseline.get("alpha", "capital") is not None
        env.sim.configure("an", "claude", model_version="claude-v2")
        assert await amain(args) == 1
    finally:
        client = store._client()
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_module_entry_point_reports_bad_suite(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("prompts:\n  - id: a\n    prompt: hi\n    checks: [{contains: []}]\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.regress",
        "--suite",
        str(suite),
        "--config",
        str(tmp_path / "missing.yaml"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"prompts[0].checks[0].contains: must be a non-empty string" in err
