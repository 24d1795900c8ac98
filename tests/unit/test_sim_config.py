"""Sim config validation (errors with paths) and the deterministic per-request draws."""

from __future__ import annotations

import itertools
import math
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.sim.config import SimConfigError, SimModelConfig, load_sim_config, parse_sim_config
from gateway.sim.plan import (
    degraded_config,
    draw_ttft,
    fake_arguments,
    hour_of,
    plan_request,
    request_rng,
    scaled_config,
    ttft_multiplier,
)
from gateway.sim.server import default_demo_sim_config
from gateway.sim.wire import ToolChoice, ToolSpec, WireRequest, split_text

P = "sim.servers.openai-sim.models.fast."


def problems_of(data: Any) -> list[str]:
    config, problems = parse_sim_config(data)
    assert config is None
    return problems


def one_server(models: dict[str, Any], kind: str = "openai", **extra: Any) -> dict[str, Any]:
    return {"servers": {"openai-sim": {"kind": kind, "models": models, **extra}}}


def test_full_config_parses() -> None:
    config, problems = parse_sim_config(
        {
            "seed": 42,
            "host": "127.0.0.1",
            "servers": {
                "openai-sim": {
                    "kind": "openai",
                    "port": 0,
                    "handshake_ms": 80,
                    "models": {
                        "fast": {
                            "ttft_p50_ms": 300,
                            "ttft_p95_ms": 600,
                            "ttft_ms": None,
                            "straggler_fraction": 0.05,
                            "tokens": 10,
                            "prompt_tokens": None,
                            "error_rate_429": 0.1,
                            "keepalive_ms": 100,
                            "tool_call": "never",
                            "text": "Hi there",
                        },
                        "defaults": None,
                    },
                },
                "claude": {"kind": "anthropic", "models": {"h": {"error_rate_529": 0.5}}},
            },
        }
    )
    assert problems == [] and config is not None
    assert config.seed == 42
    server = config.servers["openai-sim"]
    assert server.kind == "openai" and server.handshake_ms == 80.0
    fast = server.models["fast"]
    assert fast.ttft_p50_ms == 300.0 and isinstance(fast.ttft_p50_ms, float)
    assert fast.tokens == 10 and fast.tool_call == "never" and fast.text == "Hi there"
    assert server.models["defaults"] == SimModelConfig()
    assert math.isclose(fast.sigma, math.log(2) / 1.645)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            {"ttft_p50_ms": 0},
            "sim.servers.openai-sim.models.fast.ttft_p50_ms: must be a number > 0",
        ),
        (
            {"ttft_p50_ms": "fast"},
            "sim.servers.openai-sim.models.fast.ttft_p50_ms: must be a number > 0",
        ),
        (
            {"ttft_p50_ms": True},
            "sim.servers.openai-sim.models.fast.ttft_p50_ms: must be a number > 0",
        ),
        (
            {"ttft_p50_ms": 900},
            "sim.servers.openai-sim.models.fast.ttft_p95_ms: must be >= ttft_p50_ms",
        ),
        ({"tokens": 0}, "sim.servers.openai-sim.models.fast.tokens: must be an integer >= 1"),
        ({"tokens": 2.5}, "sim.servers.openai-sim.models.fast.tokens: must be an integer >= 1"),
        (
            {"cut_rate": 1.5},
            "sim.servers.openai-sim.models.fast.cut_rate: must be a number between 0 and 1",
        ),
        ({"prelude": "yes"}, "sim.servers.openai-sim.models.fast.prelude: must be true or false"),
        (
            {"tool_call": "sometimes"},
            "sim.servers.openai-sim.models.fast.tool_call: must be one of: auto, never, always",
        ),
        (
            {"straggler_multiplier": 0.5},
            "sim.servers.openai-sim.models.fast.straggler_multiplier: must be a number >= 1",
        ),
        ({"ttft_p50": 3}, "sim.servers.openai-sim.models.fast.ttft_p50: unknown key"),
        (
            {"error_rate_429": 0.6, "error_rate_500": 0.6},
            P + "error_rate_429: the error rates must add up to at most 1",
        ),
        (
            {"error_rate_529": 0.1},
            P + "error_rate_529: only for kind anthropic (529 overloaded_error)",
        ),
        ({"text": ""}, "sim.servers.openai-sim.models.fast.text: must be text"),
    ],
)
def test_model_errors_carry_paths(model: dict[str, Any], expected: str) -> None:
    assert problems_of(one_server({"fast": model})) == [expected]


def test_server_and_top_level_errors() -> None:
    problems = problems_of(
        {
            "seed": "x",
            "colour": "blue",
            "servers": {
                "a": {"kind": "grpc", "models": {"m": {}}},
                "b": {"models": {}},
                "c": {"kind": "gemini", "port": 70000, "models": {"m": {"keepalive_ms": 5}}},
                "d": "nope",
            },
        }
    )
    assert problems == [
        "sim.colour: unknown key",
        "sim.seed: must be an integer",
        "sim.servers.a.kind: must be one of: openai, anthropic, gemini, ollama",
        "sim.servers.b.kind: is required (one of: openai, anthropic, gemini, ollama)",
        "sim.servers.b.models: must be a non-empty mapping of model name to settings",
        "sim.servers.c.port: must be an integer 0..65535",
        "sim.servers.c.models.m.keepalive_ms: not supported by kind gemini (openai/anthropic only)",
        "sim.servers.d: must be a mapping",
    ]
    assert problems_of({}) == [
        "sim.servers: must be a non-empty mapping of server name to settings"
    ]
    assert problems_of([]) == ["sim: must be a mapping"]


def test_duplicate_ports_rejected() -> None:
    servers = {
        "a": {"kind": "openai", "port": 9000, "models": {"m": {}}},
        "b": {"kind": "ollama", "port": 9000, "models": {"m": {}}},
    }
    assert problems_of({"servers": servers}) == ["sim.servers.b.port: already used by server a"]


def test_load_ignores_other_sections(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "listen: {host: 127.0.0.1, port: 8080}\n"
        "sim:\n  seed: 5\n  servers:\n    o:\n      kind: ollama\n      models:\n"
        "        llama: {ttft_ms: 3}\n"
    )
    config = load_sim_config(path)
    assert config.seed == 5 and config.servers["o"].models["llama"].ttft_ms == 3.0


def test_load_reports_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "sim:\n  servers:\n    o:\n      kind: ollama\n      models: {m: {tokens: -1}}\n"
    )
    with pytest.raises(SimConfigError) as info:
        load_sim_config(path)
    assert info.value.problems == ["sim.servers.o.models.m.tokens: must be an integer >= 1"]
    path.write_text("listen: {port: 1}\n")
    with pytest.raises(SimConfigError, match="no top-level `sim:` section"):
        load_sim_config(path)


def test_demo_config_is_valid_and_shaped() -> None:
    config = default_demo_sim_config()
    kinds = {s.kind for s in config.servers.values()}
    assert kinds == {"openai", "anthropic", "gemini", "ollama"}
    models = {n: m for s in config.servers.values() for n, m in s.models.items()}
    assert models["gpt-4o-mini-sim"].ttft_p50_ms == 645
    assert models["deepseek-sim"].keepalive_ms > 0 and models["deepseek-sim"].reasoning_tokens > 0
    assert models["gemini-flash-sim"].straggler_fraction > 0


# --- draws ----------------------------------------------------------------------------

REQ = WireRequest(model="m", stream=True, prompt_chars=40, last_user_text="hi")


def plan_for(cfg: SimModelConfig, n: int, req: WireRequest = REQ, seed: int = 1) -> Any:
    return plan_request(
        cfg, request_rng(seed, "srv", "m", n), req, model="m", request_n=n, created=0.0
    )


def test_same_seed_same_plan() -> None:
    cfg = SimModelConfig(error_rate_429=0.3, cut_rate=0.3, straggler_fraction=0.2, tokens=5)
    first = [plan_for(cfg, n) for n in range(20)]
    again = [plan_for(cfg, n) for n in range(20)]
    assert first == again
    assert len({p.ttft_ms for p in first}) == 20
    assert first != [plan_for(cfg, n, seed=2) for n in range(20)]
    assert {p.error_status for p in first} == {None, 429}
    assert {p.fault for p in first} == {None, "cut"}


def test_lognormal_body_matches_quantiles() -> None:
    cfg = SimModelConfig(ttft_p50_ms=645, ttft_p95_ms=1094)
    rng = request_rng(0, "s", "m", 0)
    draws = sorted(draw_ttft(cfg, rng.gauss(0, 1), 1.0)[0] for _ in range(20000))
    assert statistics.median(draws) == pytest.approx(645, rel=0.03)
    assert draws[int(0.95 * len(draws))] == pytest.approx(1094, rel=0.05)


def test_stragglers_and_fixed_ttft() -> None:
    cfg = SimModelConfig(ttft_p50_ms=100, ttft_p95_ms=100, straggler_fraction=0.5)
    assert draw_ttft(cfg, 0.0, 0.4) == (600.0, True)
    assert draw_ttft(cfg, 0.0, 0.6) == (100.0, False)
    assert draw_ttft(SimModelConfig(ttft_ms=7), 3.0, 0.0) == (7, False)


def test_reply_content() -> None:
    plan = plan_for(SimModelConfig(text="Hello there, world!"), 0)
    assert plan.reply.text == ("Hello", " there,", " world!")
    assert plan.reply.finish == "stop" and plan.reply.prompt_tokens == 10
    capped = plan_for(
        SimModelConfig(tokens=9), 0, WireRequest(model="m", stream=True, max_tokens=3)
    )
    assert len(capped.reply.text) == 3 and capped.reply.finish == "length"
    assert capped.itl_ms[0] == 0 and all(8 <= d <= 12 for d in capped.itl_ms[1:])
    assert split_text("a  b ") == ("a", "  b ")


def test_tool_call_decision() -> None:
    tool = ToolSpec(
        "get_weather", {"properties": {"city": {"type": "string"}}, "required": ["city"]}
    )
    weather = WireRequest(model="m", stream=True, tools=(tool,), last_user_text="Weather in Oslo?")
    other = WireRequest(model="m", stream=True, tools=(tool,), last_user_text="hello")
    forced = WireRequest(model="m", stream=True, tools=(tool,), tool_choice=ToolChoice("required"))
    none = WireRequest(
        model="m",
        stream=True,
        tools=(tool,),
        tool_choice=ToolChoice("none"),
        last_user_text="weather",
    )
    call = plan_for(SimModelConfig(), 0, weather).reply
    assert call.tool_call is not None and call.finish == "tool_calls" and call.text == ()
    assert call.tool_call.arguments == {"city": "Oslo"}
    assert "".join(call.tool_call.fragments) == '{"city":"Oslo"}'
    assert plan_for(SimModelConfig(), 0, other).reply.tool_call is None
    assert plan_for(SimModelConfig(), 0, forced).reply.tool_call is not None
    assert plan_for(SimModelConfig(tool_call="always"), 0, other).reply.tool_call is not None
    assert plan_for(SimModelConfig(tool_call="never"), 0, forced).reply.tool_call is None
    assert plan_for(SimModelConfig(tool_call="always"), 0, none).reply.tool_call is None


def test_fake_arguments_follow_schema() -> None:
    schema = {
        "properties": {
            "unit": {"type": "string", "enum": ["c", "f"]},
            "days": {"type": "integer"},
            "location": {"type": "string"},
        },
        "required": ["location", "days", "unit"],
    }
    assert fake_arguments(schema) == {"location": "Oslo", "days": 1, "unit": "c"}
    assert fake_arguments({}) == {}


# --- the degraded two-state process -------------------------------------------------


def test_degraded_config_and_errors() -> None:
    config, problems = parse_sim_config(
        one_server({"fast": {"degraded": {"enter_rate": 0.01, "error_rate_429": 0.5}}})
    )
    assert problems == [] and config is not None
    state = config.servers["openai-sim"].models["fast"].degraded
    assert state is not None and state.enter_rate == 0.01 and state.exit_rate == 0.1
    bad = {"degraded": {"enter_rate": 2, "ttft_multiplier": 0.5, "error_rate_529": 0.1, "x": 1}}
    assert problems_of(one_server({"fast": bad})) == [
        P + "degraded.x: unknown key",
        P + "degraded.enter_rate: must be a number between 0 and 1",
        P + "degraded.ttft_multiplier: must be a number >= 1",
        P + "degraded.error_rate_529: only for kind anthropic (529 overloaded_error)",
    ]


def test_degraded_episodes_are_bursty_and_deterministic() -> None:
    from gateway.sim.app import SimShared
    from gateway.sim.config import SimDegradedConfig
    from gateway.sim.log import SimLog

    cfg = SimModelConfig(
        ttft_ms=10, degraded=SimDegradedConfig(enter_rate=0.05, exit_rate=0.2, error_rate_503=1.0)
    )
    runs = []
    for _ in range(2):
        shared = SimShared(seed=9, log=SimLog())
        runs.append([shared.next_request("s", "m", cfg)[1] for _ in range(400)])
    assert runs[0] == runs[1]
    states = runs[0]
    episodes = sum(1 for a, b in itertools.pairwise([False, *states]) if b and not a)
    assert 3 <= episodes and sum(states) / episodes > 2  # a few episodes, several requests each
    worse = degraded_config(cfg)
    assert worse.ttft_ms == 30 and worse.error_rate_503 == 1.0


# --- hour-of-day and region multipliers ------------------------------------------------

PEAK = [1.0] * 8 + [2.0] * 9 + [1.0] * 7  # 08-16 UTC twice as slow


def test_hourly_and_region_multipliers_parse() -> None:
    config, problems = parse_sim_config(
        one_server(
            {"fast": {"hourly_multipliers": PEAK, "region_multipliers": {"eu": 1, "us": 1.5}}}
        )
    )
    assert problems == [] and config is not None
    fast = config.servers["openai-sim"].models["fast"]
    assert fast.hourly_multipliers == tuple(PEAK) and isinstance(fast.hourly_multipliers, tuple)
    assert all(isinstance(x, float) for x in fast.hourly_multipliers)
    assert fast.region_multipliers == {"eu": 1.0, "us": 1.5}
    assert SimModelConfig().hourly_multipliers is None
    assert SimModelConfig().region_multipliers is None


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"hourly_multipliers": [1.0] * 23}, "must be a list of 24 numbers > 0 (one per UTC hour)"),
        ({"hourly_multipliers": [1.0] * 23 + [0]}, "must be a list of 24 numbers > 0"),
        ({"hourly_multipliers": "peak"}, "must be a list of 24 numbers > 0"),
        ({"region_multipliers": {"eu": -1}}, "must be a mapping of region name to a number > 0"),
        ({"region_multipliers": [1.0]}, "must be a mapping of region name to a number > 0"),
    ],
)
def test_multiplier_errors_carry_paths(model: dict[str, Any], expected: str) -> None:
    (problem,) = problems_of(one_server({"fast": model}))
    assert problem.startswith(P + next(iter(model)) + ": " + expected)


def test_ttft_multiplier_follows_hour_and_region() -> None:
    cfg = SimModelConfig(hourly_multipliers=tuple(PEAK), region_multipliers={"apac": 1.5})
    assert hour_of(datetime(2025, 3, 4, 7, 59, tzinfo=UTC).timestamp()) == 7
    assert hour_of(datetime(2025, 3, 4, 8, 0, tzinfo=UTC).timestamp()) == 8
    assert ttft_multiplier(cfg, 7, None) == 1.0
    assert ttft_multiplier(cfg, 8, None) == 2.0
    assert ttft_multiplier(cfg, 8, "apac") == 3.0
    assert ttft_multiplier(cfg, 3, "eu") == 1.0  # a region not in the table counts 1.0
    assert ttft_multiplier(SimModelConfig(), 8, "apac") == 1.0
    assert ttft_multiplier(cfg, None, "apac") == 1.5


def test_scaled_config_keeps_the_shape_and_the_draws() -> None:
    cfg = SimModelConfig(ttft_p50_ms=600, ttft_p95_ms=1000, straggler_fraction=0.2)
    slow = scaled_config(cfg, 2.0)
    assert (slow.ttft_p50_ms, slow.ttft_p95_ms) == (1200.0, 2000.0)
    assert slow.sigma == pytest.approx(cfg.sigma) and scaled_config(cfg, 1.0) is cfg
    plain = [plan_for(cfg, n) for n in range(30)]
    scaled = [plan_for(slow, n) for n in range(30)]
    for a, b in zip(plain, scaled, strict=True):  # same z, same stragglers: just x2
        assert b.ttft_ms == pytest.approx(2 * a.ttft_ms) and a.straggler == b.straggler
        assert a.reply == b.reply
    assert scaled_config(SimModelConfig(ttft_ms=10), 1.5).ttft_ms == 15.0


def test_reconfigure_checks_and_normalizes_multipliers() -> None:
    from gateway.sim.app import reconfigure

    config, _ = parse_sim_config(one_server({"fast": {}}))
    assert config is not None
    server = config.servers["openai-sim"]
    reconfigure(server, "fast", {"hourly_multipliers": [1] * 24, "region_multipliers": {"eu": 2}})
    fast = server.models["fast"]
    assert fast.hourly_multipliers == (1.0,) * 24 and fast.region_multipliers == {"eu": 2.0}
    with pytest.raises(ValueError, match="hourly_multipliers: must be a list of 24"):
        reconfigure(server, "fast", {"hourly_multipliers": [1, 2]})
    with pytest.raises(ValueError, match="region_multipliers: must be a mapping"):
        reconfigure(server, "fast", {"region_multipliers": {"eu": 0}})
    reconfigure(server, "fast", {"hourly_multipliers": None, "region_multipliers": None})
    assert server.models["fast"] == SimModelConfig()
