"""Config loading and validation: gateway.config."""

from __future__ import annotations

import copy
import datetime
import io
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.check_config import check_config_main
from gateway.config import (
    Config,
    ConfigError,
    GovernanceConfig,
    Secret,
    load_config,
    parse_config,
    summarize,
)
from gateway.config.model import replaces_cut_connections

ENV = {
    "GATEWAY_KEY": "gw-key-0123456789",
    "GATEWAY_KEY_2": "gw-key-abcdefghij",
    "GATEWAY_ADMIN_KEY": "admin-key-0123456789",
    "OPENAI_API_KEY": "sk-openai-0123456789",
    "ANTHROPIC_API_KEY": "sk-ant-0123456789",
}

EXAMPLE = """
listen: {host: 127.0.0.1, port: 8080}
auth:   {keys: [env:GATEWAY_KEY, env:GATEWAY_KEY_2]}
admin:  {key: env:GATEWAY_ADMIN_KEY}
limits: {max_body_bytes: 4194304}
state:  {backend: memory}
latency:
  region_header: x-gateway-region
  default_region: eu
  regions: [eu, us, apac]
  country_header: cf-ipcountry
  country_regions: {de: eu, US: us}
  min_samples: 50
  prewarm: {enabled: true, connections: 2}
providers:
  openai:    {kind: openai,    base_url: https://api.openai.com/v1/, api_key: env:OPENAI_API_KEY}
  anthropic: {kind: anthropic, base_url: https://api.anthropic.com, api_key: env:ANTHROPIC_API_KEY}
deployments:
  gpt-4o-mini:
    provider: openai
    model: gpt-4o-mini
    price: {input: 0.15, output: 0.60}
    ttft_timeout_s: 10
    idle_timeout_s: 30
    prior: {ttft_p50_ms: 550, ttft_p95_ms: 900}
  gpt-4o:
    provider: openai
    model: gpt-4o
    price: {input: 2.5, output: 10}
    error_budget: 0.01
  claude-haiku:
    provider: anthropic
    model: claude-3-5-haiku-latest
    price: {input: 0.80, output: 4.00}
    region: us
governance:
  pii: {email: redact, phone: redact, card: block, secret: block}
routes:
  chat:
    strategy: race
    k: 2
    deployments: [gpt-4o-mini, claude-haiku]
    hedge_delay_ms: 600
    heartbeat_after_s: 10
    max_extra_load: 0.5
    data_residency: [eu, us]
  smart:
    strategy: fallback
    deployments: [gpt-4o]
    governance: {pii: {email: block}}
"""

KNOWN_KINDS = ["anthropic", "deepseek", "gemini", "ollama", "openai"]


@pytest.fixture(autouse=True)
def fake_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in provider registry, so these tests do not depend on the real one."""
    module = types.ModuleType("gateway.providers.registry")
    module.kinds = lambda: list(KNOWN_KINDS)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.providers.registry", module)


def example() -> dict[str, Any]:
    data = yaml.safe_load(EXAMPLE)
    assert isinstance(data, dict)
    return data


def problems_of(data: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, ENV if env is None else env)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# -- a valid config -----------------------------------------------------------


def test_full_example_parses() -> None:
    config = parse_config(example(), ENV)
    assert isinstance(config, Config)
    assert config.listen.host == "127.0.0.1" and config.listen.port == 8080
    assert [s.reveal() for s in config.auth.secrets] == [ENV["GATEWAY_KEY"], ENV["GATEWAY_KEY_2"]]
    assert [k.name for k in config.auth.keys] == ["key-1", "key-2"]
    assert config.auth.secrets[0].source == "env:GATEWAY_KEY"
    assert config.admin.key is not None and config.admin.key.reveal() == ENV["GATEWAY_ADMIN_KEY"]
    assert config.limits.max_body_bytes == 4194304
    assert config.state.backend == "memory"
    assert config.latency.regions == ("eu", "us", "apac")
    assert config.latency.country_regions == {"DE": "eu", "US": "us"}
    assert config.latency.prewarm.connections == 2

    openai = config.providers["openai"]
    assert openai.name == "openai" and openai.kind == "openai"
    assert openai.base_url == "https://api.openai.com/v1"  # trailing slash stripped
    assert openai.api_key is not None and openai.api_key.reveal() == ENV["OPENAI_API_KEY"]

    mini = config.deployments["gpt-4o-mini"]
    assert mini.name == "gpt-4o-mini" and mini.provider == "openai"
    assert mini.price.input == 0.15 and mini.price.output == 0.60
    assert isinstance(mini.ttft_timeout_s, float) and mini.ttft_timeout_s == 10.0
    assert mini.prior.ttft_p50_ms == 550.0 and mini.prior.ttft_p95_ms == 900.0
    assert config.deployments["gpt-4o"].error_budget == 0.01
    assert config.deployments["claude-haiku"].region == "us"

    chat = config.routes["chat"]
    assert chat.name == "chat" and chat.strategy == "race" and chat.k == 2
    assert chat.deployments == ("gpt-4o-mini", "claude-haiku")
    assert chat.data_residency == ("eu", "us") and chat.governance is None
    smart = config.routes["smart"]
    assert smart.strategy == "fallback"
    assert smart.k == 1  # the default k is clamped to the route's size
    assert smart.governance == GovernanceConfig(pii={"email": "block"})
    assert config.governance.pii["card"] == "block"
    assert config.sim is None


def test_empty_config_uses_defaults() -> None:
    assert parse_config({}, {}) == Config()
    assert parse_config(None, {}) == Config()


def test_optional_values_and_variants() -> None:
    data = {
        "listen": {"port": 0},
        "state": {"backend": "redis", "url": "rediss://h:6380/1", "cluster": True},
        "logging": {"format": "JSON", "level": "WARNING"},
        "providers": {
            "local": {"kind": "ollama", "base_url": "http://127.0.0.1:11434"},
            "h2": {"kind": "openai", "base_url": "https://h2.example/v1", "http2": True},
            "kept": {
                "kind": "openai",
                "base_url": "https://kept.example/v1",
                "replace_cut_connections": False,
            },
            "eager": {
                "kind": "openai",
                "base_url": "http://10.0.0.2/v1",
                "replace_cut_connections": True,
            },
            "named": {
                "kind": "openai",
                "base_url": "http://10.0.0.3/v1",
                "replace_cut_connections": "auto",
            },
        },
        "deployments": {"llama": {"provider": "local", "model": "llama3", "local": True}},
        "routes": {"fast": {"deployments": ["llama"], "strategy": "hedge"}},
        "sim": {"anything": [1, 2]},
    }
    config = parse_config(data, {})
    assert config.providers["h2"].http2 and not config.providers["local"].http2
    # a cut HTTP/1.1 connection is replaced ahead of need: "auto" (the default) over https
    replaced = {name: replaces_cut_connections(p) for name, p in config.providers.items()}
    assert replaced == {
        "local": False,
        "h2": True,
        "kept": False,
        "eager": True,
        "named": False,
    }
    assert config.listen.port == 0
    assert config.state.backend == "redis" and config.state.cluster is True
    assert config.logging.format == "json" and config.logging.level == "warning"
    assert config.providers["local"].api_key is None
    assert config.deployments["llama"].local is True
    assert config.sim == {"anything": [1, 2]}


def test_literal_secret_is_allowed() -> None:
    config = parse_config({"auth": {"keys": ["literal-token-123"]}}, {})
    (key,) = config.auth.secrets
    assert key.source == "literal" and key.reveal() == "literal-token-123"


def test_summarize() -> None:
    config = parse_config(example(), ENV)
    assert summarize(config) == (
        "config OK: listen 127.0.0.1:8080, 2 providers, 3 deployments, 2 routes, "
        "state=memory, auth=2 keys\n"
        "  route chat: race k=2 -> gpt-4o-mini, claude-haiku (residency: eu, us)\n"
        "  route smart: fallback -> gpt-4o"
    )
    assert summarize(Config()).startswith(
        "config OK: listen 127.0.0.1:8080, 0 providers, 0 deployments, 0 routes, "
        "state=memory, auth=off"
    )


# -- every kind of problem ----------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _del(path: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = data
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


CASES: list[tuple[Mutation, str]] = [
    # listen
    (_set("listen/port", 70000), "listen.port: must be an integer 1..65535"),
    (_set("listen/port", "8080"), "listen.port: must be an integer 1..65535"),
    (_set("listen/host", ""), "listen.host: must be a non-empty string, got ''"),
    (_set("listen", 8080), "listen: must be a mapping, got an integer"),
    # numbers and ranges
    (
        _set("deployments/gpt-4o-mini/price/input", "abc"),
        "deployments.gpt-4o-mini.price.input: must be a number >= 0, got 'abc'",
    ),
    (
        _set("deployments/gpt-4o-mini/price/output", -1),
        "deployments.gpt-4o-mini.price.output: must be a number >= 0, got -1",
    ),
    (
        _set("deployments/gpt-4o-mini/ttft_timeout_s", 0),
        "deployments.gpt-4o-mini.ttft_timeout_s: must be a number > 0, got 0",
    ),
    (
        _set("deployments/gpt-4o-mini/idle_timeout_s", True),
        "deployments.gpt-4o-mini.idle_timeout_s: must be a number > 0, got true",
    ),
    (
        _set("deployments/gpt-4o/error_budget", 0),
        "deployments.gpt-4o.error_budget: must be a number in (0, 1], got 0",
    ),
    (
        _set("deployments/gpt-4o/error_budget", 1.5),
        "deployments.gpt-4o.error_budget: must be a number in (0, 1], got 1.5",
    ),
    (
        _set("deployments/gpt-4o/weight", -0.5),
        "deployments.gpt-4o.weight: must be a number >= 0, got -0.5",
    ),
    (
        _set("deployments/gpt-4o/max_tokens_default", 1.5),
        "deployments.gpt-4o.max_tokens_default: must be an integer >= 1, got 1.5",
    ),
    (
        _set("deployments/gpt-4o/prior", {"ttft_p50_ms": 900, "ttft_p95_ms": 500}),
        "deployments.gpt-4o.prior.ttft_p95_ms: must be >= ttft_p50_ms (900), got 500",
    ),
    (_set("latency/exploration", 1.5), "latency.exploration: must be a number in [0, 1], got 1.5"),
    (_set("latency/min_samples", 0), "latency.min_samples: must be an integer >= 1, got 0"),
    (
        _set("latency/prewarm/connections", -1),
        "latency.prewarm.connections: must be an integer >= 0, got -1",
    ),
    (_set("limits/max_body_bytes", 0), "limits.max_body_bytes: must be an integer >= 1, got 0"),
    (_set("routes/chat/k", 0), "routes.chat.k: must be an integer >= 1, got 0"),
    (_set("routes/chat/k", "2"), "routes.chat.k: must be an integer >= 1, got '2'"),
    (
        _set("routes/chat/k", 3),
        "routes.chat.k: must be <= the number of deployments (2), got 3",
    ),
    (
        _set("routes/chat/max_extra_load", -0.1),
        "routes.chat.max_extra_load: must be a number >= 0, got -0.1",
    ),
    (
        _set("routes/chat/heartbeat_after_s", 0),
        "routes.chat.heartbeat_after_s: must be a number > 0, got 0",
    ),
    # booleans are never strings
    (
        _set("deployments/claude-haiku/local", "yes"),
        "deployments.claude-haiku.local: must be true or false, got 'yes'",
    ),
    (
        _set("latency/prewarm/enabled", "true"),
        "latency.prewarm.enabled: must be true or false, got 'true'",
    ),
    # strings, lists, mappings
    (
        _del("deployments/gpt-4o/model"),
        "deployments.gpt-4o.model: is required (the upstream model id)",
    ),
    (
        _set("providers/openai/headers", {"x-org": 1}),
        "providers.openai.headers.x-org: must be a string, got an integer",
    ),
    (
        _set("providers/openai/options", [1]),
        "providers.openai.options: must be a mapping, got a list",
    ),
    (
        _set("latency/regions", "eu"),
        "latency.regions: must be a list of strings, got 'eu'",
    ),
    (_set("latency/regions", ["eu", "eu"]), "latency.regions: duplicate region 'eu'"),
    (_set("sim", [1]), "sim: must be a mapping, got a list"),
    # unknown keys
    (
        _set("routes/chat/strategi", "race"),
        "routes.chat.strategi: unknown key (did you mean 'strategy'?)",
    ),
    (_set("routs", {}), "routs: unknown key (did you mean 'routes'?)"),
    (
        _set("providers/openai/api_kye", "x"),
        "providers.openai.api_kye: unknown key (did you mean 'api_key'?)",
    ),
    (_set("listen/zzz", 1), "listen.zzz: unknown key"),
    # choices
    (
        _set("routes/chat/strategy", "rac"),
        "routes.chat.strategy: must be one of race, hedge, fallback, weighted, got 'rac'"
        " (did you mean 'race'?)",
    ),
    (
        _set("state/backend", "postgres"),
        "state.backend: must be one of memory, redis, got 'postgres'",
    ),
    (
        _set("state/url", "http://localhost:6379"),
        "state.url: must start with redis://, rediss://, unix:// or redis+sentinel://",
    ),
    (
        _set("logging/format", "xml"),
        "logging.format: must be one of auto, json, console, got 'xml'",
    ),
    (
        _set("logging/level", "verbose"),
        "logging.level: must be one of debug, info, warning, error, got 'verbose'",
    ),
    (
        _set("governance/pii/emial", "redact"),
        "governance.pii.emial: unknown PII type (known: email, phone, card, iban, national_id,"
        " ip, secret) (did you mean 'email'?)",
    ),
    (
        _set("governance/pii/card", "drop"),
        "governance.pii.card: must be one of redact, block, local_only, allow, got 'drop'",
    ),
    (
        _set("routes/smart/governance", {"pii": {"ip": "hide"}}),
        "routes.smart.governance.pii.ip: must be one of redact, block, local_only, allow",
    ),
    # providers
    (_del("providers/openai/kind"), "providers.openai.kind: is required"),
    (
        _set("providers/openai/kind", "opneai"),
        "providers.openai.kind: unknown provider kind 'opneai' (known: anthropic, deepseek,"
        " gemini, ollama, openai) (did you mean 'openai'?)",
    ),
    (
        _set("providers/openai/base_url", "ftp://api.openai.com"),
        "providers.openai.base_url: must be an http:// or https:// URL with a host",
    ),
    (
        _set("providers/openai/base_url", "api.openai.com/v1"),
        "providers.openai.base_url: must be an http:// or https:// URL with a host",
    ),
    (
        _set("providers/openai/max_connections", 0),
        "providers.openai.max_connections: must be an integer >= 1, got 0",
    ),
    (
        _set("providers/openai/connect_timeout_s", -1),
        "providers.openai.connect_timeout_s: must be a number > 0, got -1",
    ),
    (
        _set("providers/openai/http2", "yes"),
        "providers.openai.http2: must be true or false, got 'yes'",
    ),
    (
        _set("providers/openai/replace_cut_connections", "yes"),
        "providers.openai.replace_cut_connections: must be true, false or auto, got 'yes'",
    ),
    (
        _set("providers/openai/tls_ca_file", "/nonexistent/ca.pem"),
        "providers.openai.tls_ca_file: no such file: '/nonexistent/ca.pem'",
    ),
    # cross references
    (
        _set("deployments/gpt-4o-mini/provider", "openia"),
        "deployments.gpt-4o-mini.provider: unknown provider 'openia' (did you mean 'openai'?)",
    ),
    (
        _set("routes/chat/deployments", ["gpt-4o-mini", "gpt-5"]),
        "routes.chat.deployments[1]: unknown deployment 'gpt-5'",
    ),
    (
        _set("routes/chat/deployments", ["gpt-4o-mini", "gpt-4o-mini"]),
        "routes.chat.deployments[1]: duplicate deployment 'gpt-4o-mini' (also at [0])",
    ),
    (
        _set("routes/chat/deployments", [7, "claude-haiku"]),
        "routes.chat.deployments[0]: must be a deployment name (a string), got 7",
    ),
    (_set("routes/chat/deployments", []), "routes.chat.deployments: must list at least one"),
    (_del("routes/chat/deployments"), "routes.chat.deployments: is required"),
    (
        _set("routes/gpt-4o", {"deployments": ["gpt-4o"]}),
        "routes.gpt-4o: a deployment has the same name",
    ),
    (
        _set("latency/default_region", "mars"),
        "latency.default_region: unknown region 'mars' (latency.regions: eu, us, apac)",
    ),
    (
        _set("deployments/claude-haiku/region", "mars"),
        "deployments.claude-haiku.region: unknown region 'mars'",
    ),
    (
        _set("routes/chat/data_residency", ["eu", "moon"]),
        "routes.chat.data_residency[1]: unknown region 'moon'",
    ),
    (_set("routes/chat/data_residency", []), "routes.chat.data_residency: must list at least one"),
    (
        _set("latency/country_regions", {"FR": "europe"}),
        "latency.country_regions.FR: unknown region 'europe'",
    ),
    # auth
    (
        _set("auth/keys", ["env:GATEWAY_KEY", "env:GATEWAY_KEY"]),
        "auth.keys[1]: duplicate of auth.keys[0]",
    ),
    (
        _set("auth/keys", [123]),
        "auth.keys[0]: must be a non-empty string (a literal or env:NAME), got an integer",
    ),
    (
        _set("admin/key", "env:"),
        "admin.key: env:NAME needs a valid variable name, got 'env:'",
    ),
    (
        _set("providers/openai/api_key", "env:NOPE_KEY"),
        "providers.openai.api_key: environment variable NOPE_KEY is not set",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), CASES, ids=[expected.split(":")[0] for _, expected in CASES]
)
def test_problem_is_reported_with_its_path(mutate: Mutation, expected: str) -> None:
    data = example()
    mutate(data)
    problems = problems_of(data)
    assert any(p.startswith(expected) for p in problems), problems
    assert len(problems) == 1, problems


def test_unknown_kind_is_accepted_without_a_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gateway.providers.registry", None)  # import fails
    data = example()
    data["providers"]["openai"]["kind"] = "brand-new-kind"
    assert parse_config(data, ENV).providers["openai"].kind == "brand-new-kind"


def test_top_level_must_be_a_mapping() -> None:
    assert problems_of([1, 2]) == ["config: must be a mapping, got a list"]


def test_route_name_that_is_not_a_string() -> None:
    data = example()
    data["routes"][123] = {"deployments": ["gpt-4o"]}
    assert problems_of(data) == ["routes.123: name must be a non-empty string, got 123"]


def test_every_problem_is_reported_together() -> None:
    data = example()
    data["listen"]["port"] = 99999
    data["deployments"]["gpt-4o-mini"]["price"]["input"] = "abc"
    data["routes"]["chat"]["deployments"] = ["gpt-4o-mini", "gpt-5"]
    data["routes"]["chat"]["strategi"] = "race"
    del data["providers"]["anthropic"]  # claude-haiku now refers to nothing
    problems = problems_of(data, {})
    expected = [
        "auth.keys[0]: environment variable GATEWAY_KEY is not set",
        "auth.keys[1]: environment variable GATEWAY_KEY_2 is not set",
        "admin.key: environment variable GATEWAY_ADMIN_KEY is not set",
        "listen.port: must be an integer 1..65535",
        "providers.openai.api_key: environment variable OPENAI_API_KEY is not set",
        "deployments.gpt-4o-mini.price.input: must be a number >= 0, got 'abc'",
        "deployments.claude-haiku.provider: unknown provider 'anthropic'",
        "routes.chat.deployments[1]: unknown deployment 'gpt-5'",
        "routes.chat.strategi: unknown key (did you mean 'strategy'?)",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)
    assert len(problems) == len(expected)


# -- secrets ------------------------------------------------------------------


def test_secret_repr_hides_value() -> None:
    secret = Secret("sk-very-secret-value", "env:OPENAI_API_KEY")
    assert repr(secret) == "Secret(env:OPENAI_API_KEY)"
    assert "sk-very-secret-value" not in str(secret)
    assert "sk-very-secret-value" not in repr(parse_config({"admin": {"key": secret.reveal()}}, {}))


def test_secret_values_never_appear_in_errors_or_summary() -> None:
    data = example()
    # Put a resolved secret where a non-secret value is echoed back.
    data["logging"] = {"level": ENV["OPENAI_API_KEY"]}
    data["providers"]["anthropic"]["api_key"] = "env:MISSING_ANTHROPIC"
    data["auth"]["keys"].append("literal-gateway-token")
    data["limits"]["max_messages"] = "literal-gateway-token"
    with pytest.raises(ConfigError) as info:
        parse_config(data, ENV)
    text = str(info.value)
    assert "providers.anthropic.api_key: environment variable MISSING_ANTHROPIC is not set" in text
    assert "logging.level: must be one of debug, info, warning, error, got '***'" in text
    for value in [*ENV.values(), "literal-gateway-token"]:
        assert value not in text
        assert value not in repr(info.value)

    config = parse_config(example(), ENV)
    for text in (summarize(config), repr(config)):
        for value in ENV.values():
            assert value not in text


def test_empty_environment_variable_is_a_problem() -> None:
    problems = problems_of({"admin": {"key": "env:ADMIN"}}, {"ADMIN": ""})
    assert problems == ["admin.key: environment variable ADMIN is empty"]


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RG_TEST_ADMIN_KEY", "from-os-environ")
    config = parse_config({"admin": {"key": "env:RG_TEST_ADMIN_KEY"}})
    assert config.admin.key is not None and config.admin.key.reveal() == "from-os-environ"


# -- files and check-config ---------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _check(path: Path | str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    # a fixed day: the shipped catalogue's shutdown dates must not make these tests age
    code = check_config_main(str(path), out=out, err=err, today=datetime.date(2026, 12, 6))
    # the example's OpenAI models have announced shutdown dates; those warnings are
    # tested in test_catalogue_config.py, the other checks here
    lines = [
        x for x in err.getvalue().splitlines(True) if " is deprecated and shuts down " not in x
    ]
    return code, out.getvalue(), "".join(lines)


def test_load_config_reads_yaml(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, EXAMPLE), env=ENV)
    assert config == parse_config(example(), ENV)


def test_check_config_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    code, out, err = _check(_write(tmp_path, EXAMPLE.replace("heartbeat_after_s: 10", "")))
    assert code == 0 and err == ""
    assert out.startswith("config OK: listen 127.0.0.1:8080, 2 providers, 3 deployments")
    assert "  route chat: race k=2 -> gpt-4o-mini, claude-haiku" in out
    for value in ENV.values():
        assert value not in out


def test_check_config_warns_when_keep_alives_precede_the_first_token_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    code, out, err = _check(_write(tmp_path, EXAMPLE))  # heartbeat 10 s, ttft timeout 10 s
    assert code == 0 and out.startswith("config OK")
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("warning: routes.chat.heartbeat_after_s: 10 s is not above")
    assert "ttft_timeout_s of gpt-4o-mini (10 s)" in lines[0]
    assert "gets 200 and an in-stream error instead of its error status" in lines[0]
    above = EXAMPLE.replace("heartbeat_after_s: 10", "heartbeat_after_s: 10.5")
    assert _check(_write(tmp_path, above))[2] == ""
    slow = EXAMPLE.replace("    region: us\n", "    region: us\n    ttft_timeout_s: 90\n").replace(
        "heartbeat_after_s: 10", "heartbeat_after_s: 30"
    )
    assert "ttft_timeout_s of claude-haiku (90 s)" in _check(_write(tmp_path, slow))[2]


def test_heartbeats_are_off_unless_configured() -> None:
    data = example()
    del data["routes"]["chat"]["heartbeat_after_s"]
    config = parse_config(data, ENV)
    assert config.routes["chat"].heartbeat_after_s is None
    data["routes"]["chat"]["heartbeat_after_s"] = None
    assert parse_config(data, ENV).routes["chat"].heartbeat_after_s is None


def test_check_config_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak-123")
    text = """
providers:
  openai: {kind: openai, base_url: https://api.openai.com/v1, api_key: env:OPENAI_API_KEY}
deployments:
  mini: {provider: openai, model: gpt-4o-mini, price: {input: abc}}
routes:
  chat: {deployments: [mini, gpt-5], strategy: race}
"""
    path = _write(tmp_path, text)
    code, out, err = _check(path)
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"config {path} has 2 problem(s):",
        "  deployments.mini.price.input: must be a number >= 0, got 'abc'",
        "  routes.chat.deployments[1]: unknown deployment 'gpt-5'",
    ]
    assert "sk-should-not-leak-123" not in err


def test_check_config_yaml_syntax_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "listen:\n  host: 127.0.0.1\n  port: [8080\nroutes: {}\n")
    code, out, err = _check(path)
    assert code == 1 and out == ""
    assert err.startswith(f"config {path}: YAML error at line ")
    with pytest.raises(ConfigError, match="YAML error at line"):
        load_config(path)


def test_yaml_error_line_number_and_no_snippet(tmp_path: Path) -> None:
    path = _write(tmp_path, "admin:\n  key: sk-literal-secret-1\n   bad: : indent\n")
    code, _, err = _check(path)
    assert code == 1
    assert "line 3" in err
    assert "sk-literal-secret-1" not in err


def test_duplicate_yaml_keys_are_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "routes: {}\nlisten: {port: 1}\nroutes: {}\n")
    code, _, err = _check(path)
    assert code == 1
    assert (
        err.strip()
        == f"config {path}: YAML error at line 3, column 1: found duplicate key 'routes'"
    )


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    text = """
providers:
  a: &base {kind: openai, base_url: "http://127.0.0.1:9000"}
  b: {<<: *base, base_url: "http://127.0.0.1:9001/"}
"""
    config = load_config(_write(tmp_path, text), env={})
    assert config.providers["b"].base_url == "http://127.0.0.1:9001"
    assert config.providers["b"].kind == "openai"


def test_check_config_unreadable_file(tmp_path: Path) -> None:
    code, out, err = _check(tmp_path / "missing.yaml")
    assert code == 1 and out == ""
    assert (
        err.strip() == f"config {tmp_path / 'missing.yaml'}: cannot read: No such file or directory"
    )


def test_empty_file_is_the_default_config(tmp_path: Path) -> None:
    code, out, _ = _check(_write(tmp_path, "# nothing yet\n"))
    assert code == 0
    assert out.startswith("config OK: listen 127.0.0.1:8080, 0 providers, 0 deployments, 0 routes")
    assert "auth=off" in out


def test_parse_does_not_mutate_input() -> None:
    data = example()
    before = copy.deepcopy(data)
    parse_config(data, ENV)
    assert data == before


def test_a_provider_ca_file_must_be_a_pem_bundle(tmp_path: Path, certificate: Any) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    data = {"providers": {"p": {"kind": "openai", "base_url": "https://h/v1", "tls_ca_file": ""}}}
    data["providers"]["p"]["tls_ca_file"] = str(junk)
    with pytest.raises(
        ConfigError, match=r"providers\.p\.tls_ca_file: not a PEM certificate bundle"
    ):
        parse_config(data, {})
    data["providers"]["p"]["tls_ca_file"] = str(certificate[1])
    assert parse_config(data, {}).providers["p"].tls_ca_file == str(certificate[1])


def test_check_config_warns_of_http2_over_plain_http(tmp_path: Path) -> None:
    config = {
        "providers": {
            "local": {"kind": "openai", "base_url": "http://127.0.0.1:8000/v1", "http2": True},
            "tls": {"kind": "openai", "base_url": "https://api.example/v1", "http2": True},
            "plain": {"kind": "openai", "base_url": "http://127.0.0.1:8001/v1"},
        }
    }
    code, out, err = _check(_write(tmp_path, yaml.safe_dump(config)))
    assert code == 0 and out.startswith("config OK")
    warnings = [line for line in err.splitlines() if "http2" in line]
    assert warnings == [
        "warning: providers.local: http2 over plain http speaks HTTP/2 directly (h2c, prior "
        "knowledge): the server must support it, or every request fails"
    ]
