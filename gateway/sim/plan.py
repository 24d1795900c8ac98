"""Per-request draws: outcome, TTFT, faults and reply content (pure, deterministic).

Every random value of request n of a model comes from
`random.Random(f"{seed}:{server}:{model}:{n}")`, drawn in a fixed order, so a
run under one seed replays exactly (benchmarks use `ttft_ms` as an oracle).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Literal

import orjson

from gateway.sim.config import SimModelConfig
from gateway.sim.wire import FinishKind, Reply, ToolCall, ToolSpec, WireRequest, split_text
from gateway.value_class import value_class

Fault = Literal["cut", "midstream_error"]
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_WORDS = (
    "the quick model answers every question with care and a little latency while "
    "tokens stream over the wire from simulated servers to the racing gateway which "
    "picks the first one that speaks then cancels all others so users see text sooner "
    "under load tails grow long but hedging trims them at modest extra cost"
).split()
_WEATHER = re.compile(r"\bweather\b", re.IGNORECASE)
_FRAGMENT = 8  # characters of tool-call arguments per streamed fragment


@value_class
class Plan:
    """Everything decided for one request before any byte is sent."""

    request_n: int
    error_status: int | None  # 429 / 500 / 503 / 529 (sent at once instead of a reply)
    retry_after_s: float
    ttft_ms: float  # planned time to first token (the draw, straggler included)
    straggler: bool
    fault: Fault | None
    fault_after: int  # tokens sent before the fault (cut / midstream error)
    stall_before: int | None  # token index before which the stream stalls
    stall_ms: float
    itl_ms: tuple[float, ...]  # delay before token i (index 0 unused: that is the TTFT)
    reply: Reply

    def total_ms(self) -> float:
        """Time until the last token: what a non-streaming caller waits."""
        stall = self.stall_ms if self.stall_before is not None else 0.0
        return self.ttft_ms + sum(self.itl_ms[1:]) + stall


def request_rng(seed: int, server: str, model: str, n: int, stream: str = "") -> random.Random:
    """The draws of request n; a named `stream` (e.g. "state") gets an independent sequence."""
    suffix = f":{stream}" if stream else ""
    return random.Random(f"{seed}:{server}:{model}:{n}{suffix}")


def step_degraded(cfg: SimModelConfig, degraded: bool, u: float) -> bool:
    """One step of the model's normal <-> degraded chain (u uniform in [0, 1))."""
    state = cfg.degraded
    if state is None:
        return False
    return u >= state.exit_rate if degraded else u < state.enter_rate


def degraded_config(cfg: SimModelConfig) -> SimModelConfig:
    """The model's settings while degraded: its error rates replaced, TTFT multiplied."""
    state = cfg.degraded
    if state is None:
        return cfg
    m = state.ttft_multiplier
    return replace(
        cfg,
        ttft_p50_ms=cfg.ttft_p50_ms * m,
        ttft_p95_ms=cfg.ttft_p95_ms * m,
        ttft_ms=cfg.ttft_ms * m if cfg.ttft_ms is not None else None,
        error_rate_429=state.error_rate_429,
        error_rate_500=state.error_rate_500,
        error_rate_503=state.error_rate_503,
        error_rate_529=state.error_rate_529,
    )


def hour_of(epoch_s: float) -> int:
    """UTC hour of day (0-23) of an epoch timestamp."""
    return int(epoch_s // 3600) % 24


def ttft_multiplier(cfg: SimModelConfig, hour: int | None, region: str | None) -> float:
    """The model's TTFT factor for this UTC hour and client region (1.0 when unset)."""
    factor = 1.0
    if cfg.hourly_multipliers is not None and hour is not None:
        factor *= cfg.hourly_multipliers[hour % 24]
    if cfg.region_multipliers and region:
        factor *= cfg.region_multipliers.get(region, 1.0)
    return factor


def scaled_config(cfg: SimModelConfig, factor: float) -> SimModelConfig:
    """The model with every TTFT setting multiplied by ``factor`` (the shape, hence the
    draws' z-scores and stragglers, unchanged)."""
    if factor == 1.0:
        return cfg
    return replace(
        cfg,
        ttft_p50_ms=cfg.ttft_p50_ms * factor,
        ttft_p95_ms=cfg.ttft_p95_ms * factor,
        ttft_ms=cfg.ttft_ms * factor if cfg.ttft_ms is not None else None,
    )


def draw_ttft(cfg: SimModelConfig, z: float, u_straggler: float) -> tuple[float, bool]:
    """Lognormal body (median p50, sigma from p95) times a multiplier for stragglers."""
    if cfg.ttft_ms is not None:
        return cfg.ttft_ms, False
    ttft = cfg.ttft_p50_ms * math.exp(cfg.sigma * z)
    straggler = u_straggler < cfg.straggler_fraction
    return (ttft * cfg.straggler_multiplier if straggler else ttft), straggler


def error_status(cfg: SimModelConfig, u: float) -> int | None:
    edge = 0.0
    for status, rate in (
        (429, cfg.error_rate_429),
        (500, cfg.error_rate_500),
        (503, cfg.error_rate_503),
        (529, cfg.error_rate_529),
    ):
        edge += rate
        if u < edge:
            return status
    return None


def _ident(rng: random.Random, size: int = 24) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(size))


def _words(rng: random.Random, count: int) -> tuple[str, ...]:
    words = [rng.choice(_WORDS) for _ in range(count)]
    if words:
        words[0] = words[0].capitalize()
    return tuple(w if i == 0 else " " + w for i, w in enumerate(words))


def prompt_words(prompt: str, count: int) -> tuple[str, ...]:
    """The reply of a `text_from_prompt` model: `count` words that depend on `prompt` only."""
    return _words(random.Random(f"prompt:{prompt}"), count)


def continuation(text: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    """What follows `prefix` in the answer `text` (a model continuing its own answer
    writes exactly the rest); a prefix that is not the start of it gets the whole answer
    (so a wrong prefix shows as duplicated text, never as silence)."""
    whole = "".join(text)
    if not whole.startswith(prefix):
        return text
    return split_text(whole[len(prefix) :])


def wants_tool_call(cfg: SimModelConfig, req: WireRequest) -> bool:
    if cfg.tool_call == "never" or not req.tools or req.tool_choice.mode == "none":
        return False
    if cfg.tool_call == "always" or req.tool_choice.mode in ("required", "named"):
        return True
    return bool(_WEATHER.search(req.last_user_text))


def fake_arguments(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Plausible arguments for a JSON schema: required properties (or the first one)."""
    props = schema.get("properties")
    if not isinstance(props, Mapping) or not props:
        return {}
    required = schema.get("required")
    names = [n for n in required if n in props] if isinstance(required, list) else []
    args: dict[str, Any] = {}
    for name in names or [next(iter(props))]:
        prop = props[name] if isinstance(props[name], Mapping) else {}
        args[name] = _fake_value(name, prop)
    return args


def _fake_value(name: str, prop: Mapping[str, Any]) -> Any:
    enum = prop.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = prop.get("type")
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return fake_arguments(prop)
    return "Oslo" if any(k in name.lower() for k in ("city", "location", "place")) else "sim"


def _tool_call(req: WireRequest, rng: random.Random) -> ToolCall:
    spec = req.tools[0]
    if req.tool_choice.mode == "named":
        named = [t for t in req.tools if t.name == req.tool_choice.name]
        spec = named[0] if named else ToolSpec(req.tool_choice.name or spec.name, {})
    args = fake_arguments(spec.schema)
    text = orjson.dumps(args).decode()
    frags = tuple(text[i : i + _FRAGMENT] for i in range(0, len(text), _FRAGMENT))
    return ToolCall(_ident(rng), spec.name, args, text, frags)


def plan_request(
    cfg: SimModelConfig,
    rng: random.Random,
    req: WireRequest,
    *,
    model: str,
    request_n: int,
    created: float,
    frames: Callable[[Reply], int] | None = None,
) -> Plan:
    """Draw one request's plan; the draws always happen in the same order.

    `frames(reply)` is the number of token frames the wire format will send
    (a Gemini tool call is one frame, an OpenAI one is several).
    """
    u_error, z, u_straggler = rng.random(), rng.gauss(0.0, 1.0), rng.random()
    u_fault, u_stall = rng.random(), rng.random()
    status = error_status(cfg, u_error)
    ttft, straggler = draw_ttft(cfg, z, u_straggler)
    id_seed = _ident(rng)
    reasoning = _words(rng, cfg.reasoning_tokens)
    tool = _tool_call(req, rng) if wants_tool_call(cfg, req) else None
    finish: FinishKind = "stop"
    text: tuple[str, ...] = ()
    if tool is not None:
        finish = "tool_calls"
    else:
        if cfg.echo and req.last_user_text:
            text = split_text(req.last_user_text)  # what the upstream really received
        elif cfg.text is not None:
            text = split_text(cfg.text)
        elif cfg.text_from_prompt:
            text = prompt_words(req.last_user_text, cfg.tokens)
        else:
            text = _words(rng, cfg.tokens)
        if req.continue_from is not None:
            text = continuation(text, req.continue_from)
        if req.max_tokens is not None and len(text) > req.max_tokens:
            text, finish = text[: req.max_tokens], "length"
    tool_tokens = len(tool.fragments) + 1 if tool is not None else 0
    prompt = cfg.prompt_tokens or max(1, math.ceil(req.prompt_chars / 4))
    reply = Reply(
        id_seed=id_seed,
        model=cfg.model_version or model,
        created=created,
        reasoning=reasoning,
        text=text,
        tool_call=tool,
        finish=finish,
        named_tool=req.tool_choice.mode == "named",
        prompt_tokens=prompt,
        completion_tokens=len(reasoning) + len(text) + tool_tokens,
    )
    n = frames(reply) if frames is not None else reply.completion_tokens
    itl = tuple([0.0] + [cfg.itl_ms * rng.uniform(0.8, 1.2) for _ in range(n - 1)])
    fault: Fault | None = None
    if u_fault < cfg.cut_rate:
        fault = "cut"
    elif u_fault < cfg.cut_rate + cfg.midstream_error_rate:
        fault = "midstream_error"
    # "mid-stream": after at least one token, before the terminator
    fault_after = rng.randint(1, max(1, n - 1))
    stall_at = rng.randint(1, max(1, n - 1))
    return Plan(
        request_n=request_n,
        error_status=status,
        retry_after_s=cfg.retry_after_s,
        ttft_ms=ttft,
        straggler=straggler,
        fault=fault,
        fault_after=fault_after,
        stall_before=stall_at if u_stall < cfg.stall_rate else None,
        stall_ms=cfg.stall_ms,
        itl_ms=itl,
        reply=reply,
    )
