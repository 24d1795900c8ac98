"""Configuration of the simulated providers (the `sim:` section of a YAML file).

`parse_sim_config` never raises on bad input: it returns every problem it finds,
each prefixed with the path of the offending key
(`sim.servers.openai-sim.models.fast.ttft_p50_ms: must be a number > 0`).
Unknown keys are errors, out-of-range values are rejected, never clamped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from gateway.value_class import value_class

Kind = Literal["openai", "anthropic", "gemini", "ollama"]
KINDS: tuple[str, ...] = ("openai", "anthropic", "gemini", "ollama")
ToolCallMode = Literal["auto", "never", "always"]
TOOL_CALL_MODES: tuple[str, ...] = ("auto", "never", "always")
ModelType = Literal["chat", "embedding"]
MODEL_TYPES: tuple[str, ...] = ("chat", "embedding")
MAX_SIM_DIMENSIONS = 16384


@value_class
class SimDegradedConfig:
    """A two-state process (normal <-> degraded), stepped once per request of the model.

    While degraded, these error rates replace the model's and TTFT is multiplied.
    Mean episode length is 1/exit_rate requests; errors come in bursts, not coin flips.
    """

    enter_rate: float = 0.0  # per-request probability normal -> degraded
    exit_rate: float = 0.1  # per-request probability degraded -> normal
    ttft_multiplier: float = 3.0
    error_rate_429: float = 0.0
    error_rate_500: float = 0.0
    error_rate_503: float = 0.0
    error_rate_529: float = 0.0


@value_class
class SimModelConfig:
    """Latency shape, content and faults of one simulated model."""

    ttft_p50_ms: float = 300.0
    ttft_p95_ms: float = 600.0
    ttft_ms: float | None = None  # fixed TTFT (no randomness) when set
    straggler_fraction: float = 0.0
    straggler_multiplier: float = 6.0
    itl_ms: float = 10.0
    tokens: int = 50
    prompt_tokens: int | None = None
    error_rate_429: float = 0.0
    retry_after_s: float = 1.0
    error_rate_500: float = 0.0
    error_rate_503: float = 0.0
    error_rate_529: float = 0.0
    cut_rate: float = 0.0
    midstream_error_rate: float = 0.0
    stall_rate: float = 0.0
    stall_ms: float = 60000.0
    prelude: bool = True
    # Response headers (and prelude) only with the first token, as a server that writes
    # nothing until it generates (Ollama's Go server while a model loads); no keep-alives.
    headers_at_first_token: bool = False
    keepalive_ms: float = 0.0
    model_version: str | None = None
    text: str | None = None
    echo: bool = False  # reply with the last user message as received (governance tests)
    # The reply's words depend on the last user message only, the same on every server and
    # model: a backup asked to continue another's cut answer knows how it goes on.
    text_from_prompt: bool = False
    reasoning_tokens: int = 0
    tool_call: ToolCallMode = "auto"
    degraded: SimDegradedConfig | None = None
    # TTFT x hourly_multipliers[UTC hour of the cluster's clock] (24 values), and
    # x region_multipliers[region of the request] (the cluster's current region or
    # the request's x-sim-region header; a region not listed counts 1.0).
    hourly_multipliers: tuple[float, ...] | None = None
    region_multipliers: dict[str, float] | None = None
    # An embedding model answers the embeddings endpoint (and refuses chat): deterministic
    # unit vectors of `dimensions` floats per input; its TTFT is the whole call's latency.
    type: ModelType = "chat"
    dimensions: int = 256

    @property
    def sigma(self) -> float:
        """Lognormal shape parameter: ln(p95/p50) / 1.645."""
        return math.log(self.ttft_p95_ms / self.ttft_p50_ms) / 1.645


@value_class
class SimServerConfig:
    kind: Kind
    models: dict[str, SimModelConfig]
    port: int = 0
    handshake_ms: float = 0.0
    # Only HTTP/2: prior-knowledge h2c on plain TCP, ALPN "h2" alone with TLS (h2serve.py).
    http2: bool = False
    # PEM files (both or neither): with them the server speaks TLS (https:// base URLs).
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


@value_class
class SimConfig:
    servers: dict[str, SimServerConfig]
    seed: int = 0
    host: str = "127.0.0.1"
    log_token_times: bool = False  # each streamed token's write time in the log (benchmarks)


class SimConfigError(ValueError):
    """Raised by `load_sim_config`; `problems` lists every error with its path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid sim config:\n  " + "\n  ".join(problems))
        self.problems = problems


# --- value checks: each returns an error message or None --------------------------

Check = Callable[[Any], str | None]


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num_gt0(v: Any) -> str | None:
    return None if _is_num(v) and v > 0 else "must be a number > 0"


def _num_ge0(v: Any) -> str | None:
    return None if _is_num(v) and v >= 0 else "must be a number >= 0"


def _num_ge1(v: Any) -> str | None:
    return None if _is_num(v) and v >= 1 else "must be a number >= 1"


def _rate(v: Any) -> str | None:
    return None if _is_num(v) and 0 <= v <= 1 else "must be a number between 0 and 1"


def _int_ge0(v: Any) -> str | None:
    return None if _is_int(v) and v >= 0 else "must be an integer >= 0"


def _int_ge1(v: Any) -> str | None:
    return None if _is_int(v) and v >= 1 else "must be an integer >= 1"


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _nonempty_str(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "must be a non-empty string"


def _optional(check: Check) -> Check:
    return lambda v: None if v is None else check(v)


def _one_of(options: tuple[str, ...]) -> Check:
    return lambda v: None if v in options else "must be one of: " + ", ".join(options)


def _pem_file(v: Any) -> str | None:
    if not isinstance(v, str) or not v:
        return "must be the path of a PEM file"
    return None if Path(v).is_file() else f"no such file: {v}"


def _port(v: Any) -> str | None:
    return None if _is_int(v) and 0 <= v <= 65535 else "must be an integer 0..65535"


def _seed(v: Any) -> str | None:
    return None if _is_int(v) else "must be an integer"


HOURS = 24


def _hourly(v: Any) -> str | None:
    ok = isinstance(v, list | tuple) and len(v) == HOURS and all(_is_num(x) and x > 0 for x in v)
    return None if ok else f"must be a list of {HOURS} numbers > 0 (one per UTC hour)"


def _regions(v: Any) -> str | None:
    ok = isinstance(v, Mapping) and all(
        isinstance(k, str) and k and _is_num(x) and x > 0 for k, x in v.items()
    )
    return None if ok else "must be a mapping of region name to a number > 0"


_MODEL_CHECKS: dict[str, Check] = {
    "ttft_p50_ms": _num_gt0,
    "ttft_p95_ms": _num_gt0,
    "ttft_ms": _optional(_num_ge0),
    "straggler_fraction": _rate,
    "straggler_multiplier": _num_ge1,
    "itl_ms": _num_ge0,
    "tokens": _int_ge1,
    "prompt_tokens": _optional(_int_ge1),
    "error_rate_429": _rate,
    "retry_after_s": _num_ge0,
    "error_rate_500": _rate,
    "error_rate_503": _rate,
    "error_rate_529": _rate,
    "cut_rate": _rate,
    "midstream_error_rate": _rate,
    "stall_rate": _rate,
    "stall_ms": _num_ge0,
    "prelude": _boolean,
    "headers_at_first_token": _boolean,
    "keepalive_ms": _num_ge0,
    "model_version": _optional(_nonempty_str),
    "text": _optional(lambda v: None if isinstance(v, str) and v.strip() else "must be text"),
    "reasoning_tokens": _int_ge0,
    "echo": _boolean,
    "text_from_prompt": _boolean,
    "tool_call": _one_of(TOOL_CALL_MODES),
    "hourly_multipliers": _optional(_hourly),
    "region_multipliers": _optional(_regions),
    "type": _one_of(MODEL_TYPES),
    "dimensions": lambda v: (
        None
        if _is_int(v) and 1 <= v <= MAX_SIM_DIMENSIONS
        else f"must be an integer from 1 to {MAX_SIM_DIMENSIONS}"
    ),
}
assert {*_MODEL_CHECKS, "degraded"} == {f.name for f in fields(SimModelConfig)}


def normalize_value(key: str, value: Any) -> Any:
    """A checked value in the type SimModelConfig holds (lists -> tuples of floats, ...)."""
    if value is None:
        return None
    if key == "hourly_multipliers":
        return tuple(float(x) for x in value)
    if key == "region_multipliers":
        return {str(k): float(x) for k, x in value.items()}
    if _is_float_key(key, value):
        return float(value)
    return value


def check_model_value(key: str, value: Any) -> str | None:
    """The problem with one model setting's value, or None (for runtime reconfiguration)."""
    check = _MODEL_CHECKS.get(key)
    return None if check is None else check(value)


_DEGRADED_CHECKS: dict[str, Check] = {
    "enter_rate": _rate,
    "exit_rate": _rate,
    "ttft_multiplier": _num_ge1,
    "error_rate_429": _rate,
    "error_rate_500": _rate,
    "error_rate_503": _rate,
    "error_rate_529": _rate,
}
assert set(_DEGRADED_CHECKS) == {f.name for f in fields(SimDegradedConfig)}

_SERVER_CHECKS: dict[str, Check] = {
    "kind": _one_of(KINDS),
    "port": _port,
    "handshake_ms": _num_ge0,
    "http2": _boolean,
    "tls_cert": _optional(_pem_file),
    "tls_key": _optional(_pem_file),
}
assert {*_SERVER_CHECKS, "models"} == {f.name for f in fields(SimServerConfig)}
_TOP_CHECKS: dict[str, Check] = {
    "seed": _seed,
    "host": _nonempty_str,
    "log_token_times": _boolean,
}


@dataclass(slots=True)
class _Problems:
    items: list[str] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")


def _scalars(
    data: Mapping[str, Any], checks: Mapping[str, Check], path: str, out: _Problems
) -> dict[str, Any]:
    """Check the scalar keys of one mapping; return the valid ones."""
    valid: dict[str, Any] = {}
    for key, check in checks.items():
        if key in data:
            msg = check(data[key])
            if msg is None:
                valid[key] = normalize_value(key, data[key])
            else:
                out.add(f"{path}.{key}", msg)
    return valid


def _is_float_key(key: str, value: Any) -> bool:
    return _is_int(value) and (
        key.endswith(("_ms", "_s", "_fraction", "_multiplier")) or "rate" in key
    )


def _unknown(data: Mapping[Any, Any], allowed: set[str], path: str, out: _Problems) -> None:
    for key in data:
        if key not in allowed:
            out.add(f"{path}.{key}", "unknown key")


def _parse_model(data: Any, kind: str, path: str, out: _Problems) -> SimModelConfig | None:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        out.add(path, "must be a mapping")
        return None
    before = len(out.items)
    _unknown(data, {*_MODEL_CHECKS, "degraded"}, path, out)
    values = _scalars(data, _MODEL_CHECKS, path, out)
    if data.get("degraded") is not None:
        values["degraded"] = _parse_degraded(data["degraded"], kind, f"{path}.degraded", out)
    model = SimModelConfig(**values)
    if "ttft_p50_ms" in values or "ttft_p95_ms" in values:
        if model.ttft_p95_ms < model.ttft_p50_ms:
            out.add(f"{path}.ttft_p95_ms", "must be >= ttft_p50_ms")
    errors = model.error_rate_429 + model.error_rate_500 + model.error_rate_503
    if errors + model.error_rate_529 > 1:
        out.add(f"{path}.error_rate_429", "the error rates must add up to at most 1")
    if model.cut_rate + model.midstream_error_rate > 1:
        out.add(f"{path}.cut_rate", "cut_rate + midstream_error_rate must be at most 1")
    if model.error_rate_529 > 0 and kind != "anthropic":
        out.add(f"{path}.error_rate_529", "only for kind anthropic (529 overloaded_error)")
    if model.keepalive_ms > 0 and kind in ("gemini", "ollama"):
        out.add(f"{path}.keepalive_ms", f"not supported by kind {kind} (openai/anthropic only)")
    return model if len(out.items) == before else None


def _parse_degraded(data: Any, kind: str, path: str, out: _Problems) -> SimDegradedConfig | None:
    if not isinstance(data, Mapping):
        out.add(path, "must be a mapping")
        return None
    _unknown(data, set(_DEGRADED_CHECKS), path, out)
    state = SimDegradedConfig(**_scalars(data, _DEGRADED_CHECKS, path, out))
    rates = state.error_rate_429 + state.error_rate_500 + state.error_rate_503
    if rates + state.error_rate_529 > 1:
        out.add(f"{path}.error_rate_429", "the error rates must add up to at most 1")
    if state.error_rate_529 > 0 and kind != "anthropic":
        out.add(f"{path}.error_rate_529", "only for kind anthropic (529 overloaded_error)")
    return state


def _parse_server(data: Any, path: str, out: _Problems) -> SimServerConfig | None:
    if not isinstance(data, Mapping):
        out.add(path, "must be a mapping")
        return None
    before = len(out.items)
    _unknown(data, {*_SERVER_CHECKS, "models"}, path, out)
    if "kind" not in data:
        out.add(f"{path}.kind", "is required (one of: " + ", ".join(KINDS) + ")")
    values = _scalars(data, _SERVER_CHECKS, path, out)
    for present, missing in (("tls_cert", "tls_key"), ("tls_key", "tls_cert")):
        if data.get(present) is not None and data.get(missing) is None:
            out.add(f"{path}.{missing}", f"is required with {present} (both or neither)")
    kind = values.get("kind", "")
    raw_models = data.get("models")
    models: dict[str, SimModelConfig] = {}
    if not isinstance(raw_models, Mapping) or not raw_models:
        out.add(f"{path}.models", "must be a non-empty mapping of model name to settings")
    else:
        for name, raw in raw_models.items():
            mpath = f"{path}.models.{name}"
            if not isinstance(name, str) or not name:
                out.add(mpath, "model name must be a non-empty string")
                continue
            model = _parse_model(raw, kind, mpath, out)
            if model is not None:
                models[name] = model
    if len(out.items) != before:
        return None
    return SimServerConfig(models=models, **values)


def parse_sim_config(
    data: Mapping[str, Any], path: str = "sim"
) -> tuple[SimConfig | None, list[str]]:
    """Validate the `sim:` mapping. Returns (config, []) or (None, problems)."""
    out = _Problems()
    if not isinstance(data, Mapping):
        return None, [f"{path}: must be a mapping"]
    _unknown(data, {*_TOP_CHECKS, "servers"}, path, out)
    values = _scalars(data, _TOP_CHECKS, path, out)
    raw_servers = data.get("servers")
    servers: dict[str, SimServerConfig] = {}
    if not isinstance(raw_servers, Mapping) or not raw_servers:
        out.add(f"{path}.servers", "must be a non-empty mapping of server name to settings")
    else:
        ports: dict[int, str] = {}
        for name, raw in raw_servers.items():
            spath = f"{path}.servers.{name}"
            if not isinstance(name, str) or not name:
                out.add(spath, "server name must be a non-empty string")
                continue
            server = _parse_server(raw, spath, out)
            if server is None:
                continue
            if server.port and server.port in ports:
                out.add(f"{spath}.port", f"already used by server {ports[server.port]}")
            ports.setdefault(server.port, name)
            servers[name] = server
    if out.items:
        return None, out.items
    return SimConfig(servers=servers, **values), []


def load_sim_config(file: str | Path) -> SimConfig:
    """Read the `sim:` section of a YAML file (other top-level sections are ignored).

    Raises SimConfigError listing every problem. Blocking file I/O: call it at
    startup, not from a request handler.
    """
    try:
        doc = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SimConfigError([f"{file}: {exc}"]) from exc
    if not isinstance(doc, Mapping) or "sim" not in doc:
        raise SimConfigError([f"{file}: no top-level `sim:` section"])
    config, problems = parse_sim_config(cast(Mapping[str, Any], doc["sim"]))
    if config is None:
        raise SimConfigError(problems)
    return config
