"""Routing before the race: circuit breakers under a failing deployment, and tiered cost.

    python -m bench.routing [--quick] [--rate R] [--cooldown S] [--requests N] [--out DIR]

Everything runs in this one process (SimCluster + Gateway + start_server on
real local sockets, as tests/stack.py and bench.race_strategies do); the
client, the gateway's health registry and the simulator's log all use
`time.monotonic()`, so client requests, breaker changes and upstream requests
line up on one clock.

(a) Breaker. Three deployments A, B, C (one simulated OpenAI-kind server
each, TTFT p50 30 ms / p95 60 ms, 16 tokens, 3 ms apart) behind a `fallback`
route [A, B, C]: A is the primary and takes every request while healthy, the
worst case for an outage of A. Open loop at R requests/s. After a healthy
phase, A starts failing (`SimCluster.configure`):

- `error_rate_500 = 0.3`: 30 % of A's requests fail before the first token.
  The race engine moves on to the next candidate, so clients should see none.
- `cut_rate = 0.3`: 30 % of A's streams are cut after their first token(s).
  Text has reached the client by then: these requests fail for the client
  and only the breaker can keep them rare.

Each scenario runs on a fresh simulator and gateway with the breaker (health
window 100, min_requests 20, error budget 0.05, cooldown --cooldown s doubled
after each failed half-open round, 3 probes) and without it (window =
min_requests = 10^9: it never has enough outcomes to open). The cut scenario
also runs with 10 half-open probes: three probes all succeed 34 % of the time
(0.7^3) against a deployment that still fails 30 %, the breaker then closes
with an empty window and needs min_requests outcomes again before it can
reopen; with 10 probes that happens 2.8 % of the time. The breaker's opening
time is taken from the health registry's state-change listener
(cross-checked with `health.snapshot()["A"]["opened_count"]`); the phases are
split there. "A share" = client requests of the phase whose race attempted A
(the gateway's RaceRecords); upstream failures are the simulator's 500s and
cuts, by arrival time.

(b) Tiers. A mixed workload, the same request list for two routes on one
gateway: 70 % short chat (15-300 prompt tokens, 30-250 output tokens), 15 %
long-context (2,000-8,000 prompt tokens, 200-600 output) and 15 % reasoning
(`reasoning_effort: high`, 100-600 prompt tokens, 400-1,200 output). Route
`tiered`: tier `reasoning` (reasoning: true) and tier `long`
(min_prompt_tokens 1501) to `premium` (3 / 15 USD per M input / output
tokens), tier `short` (max_prompt_tokens 1500) to `cheap` (0.15 / 0.60).
Route `premium-only`: everything to `premium`. Output lengths are set per
request by `max_tokens` (the simulator stops there), so both routes produce
the same tokens and the cost difference is the price alone: this measures
what tiering saves, not whether the cheap model's answers are good enough.
Costs are the gateway's own accounting (each attempt's usage x price, as in
`gateway_cost_usd_total` and `spend_by_deployment`), cross-checked against the
metric and against the token counts the simulator reports by construction.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from gateway.config import parse_config
from gateway.loadtest.report import to_json_bytes
from gateway.loadtest.timing import StreamTimer
from gateway.logs import configure_logging
from gateway.routing.health import StateChange
from gateway.runtime import Gateway
from gateway.server.app import start_server
from gateway.sim.config import parse_sim_config
from gateway.sim.server import SimCluster
from gateway.sim.wire import text_chars
from gateway.streaming.accounting import RaceRecord

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 77
API_KEY = "bench"
DEPS = ("A", "B", "C")
FAILING = "A"
MODEL = {"ttft_p50_ms": 30.0, "ttft_p95_ms": 60.0, "itl_ms": 3.0, "tokens": 16}
BREAKER = {"window": 100, "min_requests": 20, "half_open_probes": 3}
NO_BREAKER = {"window": 10**9, "min_requests": 10**9, "half_open_probes": 3}
MORE_PROBES = {**BREAKER, "half_open_probes": 10}
VARIANTS = {  # label: health section (cooldown_s added from --cooldown)
    "on": BREAKER,
    "off": NO_BREAKER,
    "on, 10 probes": MORE_PROBES,
}
FAULTS = {
    "500 before first token": {"error_rate_500": 0.3},
    "cut mid-stream": {"cut_rate": 0.3},
}
PRICES = {"cheap": (0.15, 0.60), "premium": (3.0, 15.0)}  # USD per M input / output tokens
TIER_SPLIT = 1500  # prompt tokens: long-context tier from 1501
WORDS = (
    "the of and to in is that for it as was with be by on not this are or from at which but "
    "have an they you were there one all we their has would when if so no will can more about "
    "what up out into them than some could time only new like other then do any these two may "
    "order account invoice delivery customer support ticket refund payment shipment address "
    "meeting schedule report quarter revenue contract renewal update request issue problem "
    "theorem proof lemma graph vertex edge matrix vector integral bound constraint optimal"
).split()


class Collector:
    """Gateway observer: the RaceRecord of every request, by request id."""

    def __init__(self) -> None:
        self.records: dict[str, RaceRecord] = {}

    def on_race_end(self, record: RaceRecord) -> None:
        self.records[record.request_id] = record


@dataclass(slots=True)
class Sample:
    index: int
    start: float  # time.monotonic() when due
    status: int | None = None
    deployment: str | None = None
    error: str | None = None
    ttft_s: float | None = None
    tokens: int = 0
    end: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


async def send(
    http: aiohttp.ClientSession,
    url: str,
    body: bytes,
    index: int,
    request_id: str,
    start: float | None = None,
) -> Sample:
    """One streaming request; errors are whatever the client would notice."""
    start = time.monotonic() if start is None else start
    sample = Sample(index, start)
    headers = {
        "Authorization": f"Bearer {API_KEY}",
        "Content-Type": "application/json",
        "x-request-id": request_id,
    }
    try:
        async with asyncio.timeout(30):
            async with http.post(url, data=body, headers=headers) as resp:
                sample.status = resp.status
                sample.deployment = resp.headers.get("x-gateway-deployment")
                if resp.status != 200:
                    await resp.read()
                    sample.error = f"http_{resp.status}"
                    return sample
                timer = StreamTimer(start)
                try:
                    async for data in resp.content.iter_any():
                        timer.feed(data, time.monotonic())
                except (aiohttp.ClientError, ConnectionError) as exc:
                    sample.error = f"stream_error: {type(exc).__name__}"
                    return sample
                timer.close()
                sample.error = timer.error
                sample.ttft_s = timer.ttft
                sample.tokens = timer.tokens
    except (aiohttp.ClientError, OSError) as exc:
        sample.error = f"connect_error: {type(exc).__name__}"
    except TimeoutError:
        sample.error = "timeout"
    finally:
        sample.end = time.monotonic()
    return sample


def q(values: Sequence[float], p: float) -> float | None:
    data = sorted(values)
    if not data:
        return None
    rank = (len(data) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (rank - lo)


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


# --- (a) breaker --------------------------------------------------------------


def breaker_configs(cluster: SimCluster, health: dict[str, Any]) -> dict[str, Any]:
    return {
        "logging": {"level": "warning"},
        "latency": {"prewarm": {"enabled": False}},
        "providers": {
            f"sim-{d.lower()}": {
                "kind": "openai",
                "base_url": cluster.base_url(f"sim-{d.lower()}"),
                "api_key": "sim-key",
                "max_connections": 256,
            }
            for d in DEPS
        },
        "deployments": {
            d: {"provider": f"sim-{d.lower()}", "model": f"model-{d.lower()}", "error_budget": 0.05}
            for d in DEPS
        },
        "routes": {"chat": {"strategy": "fallback", "deployments": list(DEPS)}},
        "routing": {"allow_direct_deployments": True},  # the warm-up names each deployment
        "health": health,
    }


async def breaker_run(
    fault_name: str,
    variant: str,
    rate: float,
    healthy_s: float,
    failing_s: float,
    cooldown_s: float,
) -> dict[str, Any]:
    sim_data = {
        "seed": SEED,
        "servers": {
            f"sim-{d.lower()}": {"kind": "openai", "models": {f"model-{d.lower()}": dict(MODEL)}}
            for d in DEPS
        },
    }
    sim_config, problems = parse_sim_config(sim_data)
    if sim_config is None:
        raise SystemExit("bad sim config:\n" + "\n".join(problems))
    health = {**VARIANTS[variant], "cooldown_s": cooldown_s}
    breaker = variant != "off"
    changes: list[StateChange] = []
    gc.collect()
    async with SimCluster(sim_config) as cluster:
        gateway = Gateway(parse_config(breaker_configs(cluster, health), env={}))
        gateway.state.health.add_listener(changes.append)
        collector = Collector()
        gateway.add_observer(collector)
        runner, url = await start_server(gateway, "127.0.0.1", 0)
        connector = aiohttp.TCPConnector(limit=0)
        try:
            async with aiohttp.ClientSession(connector=connector) as http:
                chat_url = f"{url}/v1/chat/completions"
                body = orjson.dumps(
                    {
                        "model": "chat",
                        "messages": [{"role": "user", "content": "Say something short."}],
                        "stream": True,
                    }
                )
                # warm-up: a connection to each simulator, then a clean log and fresh breakers
                for d in DEPS:
                    warm = orjson.dumps(
                        {
                            "model": d,
                            "messages": [{"role": "user", "content": "hi"}],
                            "stream": True,
                        }
                    )
                    await asyncio.gather(
                        *(send(http, chat_url, warm, -1, "warm") for _ in range(4))
                    )
                cluster.reset()  # the warm-up's successes stay in the health windows
                changes.clear()
                total = int(rate * (healthy_s + failing_s))
                t0 = time.monotonic()
                t_fault = t0 + healthy_s
                tasks: list[asyncio.Task[Sample]] = []
                faulted = False
                for i in range(total):
                    due = t0 + i / rate
                    if not faulted and due >= t_fault:
                        delay = t_fault - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        cluster.configure("sim-a", "model-a", **FAULTS[fault_name])
                        t_fault = time.monotonic()
                        faulted = True
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(send(http, chat_url, body, i, f"r{i}", due)))
                samples = await asyncio.gather(*tasks)
                t_end = time.monotonic()
                for _ in range(100):  # race records land just after the response ends
                    if all(f"r{s.index}" in collector.records for s in samples):
                        break
                    await asyncio.sleep(0.02)
                snapshot = gateway.state.health.snapshot()
        finally:
            await runner.cleanup()
        records = [r for r in cluster.log.records if r.model is not None]
    opens = [c.at for c in changes if c.new == "open" and c.deployment == FAILING]
    t_open = opens[0] if opens else None
    phases: list[tuple[str, float, float]] = [("healthy", t0, t_fault)]
    if t_open is not None:
        phases += [
            ("fault, breaker closed", t_fault, t_open),
            ("after breaker opened", t_open, t_end),
        ]
    else:
        phases += [("fault, no breaker", t_fault, t_end)]
    tried_a = {
        s.index: any(a.deployment == FAILING for a in rec.attempts)
        for s in samples
        if (rec := collector.records.get(f"r{s.index}")) is not None
    }
    rows = [phase_row(name, lo, hi, samples, records, tried_a) for name, lo, hi in phases]
    failing = phase_row("whole fault period", t_fault, t_end, samples, records, tried_a)
    return {
        "fault": fault_name,
        "fault_settings": FAULTS[fault_name],
        "breaker": breaker,
        "variant": variant,
        "health": health,
        "rate": rate,
        "requests": len(samples),
        "healthy_s": healthy_s,
        "failing_s": failing_s,
        "opened_after_fault_s": None if t_open is None else t_open - t_fault,
        "a_requests_before_open": sum(
            1 for r in records if r.model == "model-a" and t_fault <= r.arrival < (t_open or 0)
        ),
        "opened_count": snapshot[FAILING]["opened_count"],
        "opened_count_listener": len(opens),
        "state_changes": [
            {"t_s": c.at - t_fault, "deployment": c.deployment, "old": c.old, "new": c.new}
            for c in changes
        ],
        "final_state": snapshot[FAILING]["state"],
        "phases": rows,
        "fault_period": failing,
        "client_errors_by_kind": dict(Counter(s.error.split(":")[0] for s in samples if s.error)),
    }


def phase_row(
    name: str,
    lo: float,
    hi: float,
    samples: Sequence[Sample],
    records: Sequence[Any],
    tried_a: dict[int, bool],
) -> dict[str, Any]:
    """Client requests by due time in [lo, hi); upstream requests by arrival in [lo, hi)."""
    mine = [s for s in samples if lo <= s.start < hi]
    ups = [r for r in records if lo <= r.arrival < hi]
    failures = [r for r in ups if r.outcome.startswith("error_") or r.outcome == "cut"]
    errors = [s for s in mine if s.error is not None]
    ttft = [s.ttft_s * 1000 for s in mine if s.ttft_s is not None and s.error is None]
    n = len(mine)
    return {
        "phase": name,
        "seconds": hi - lo,
        "requests": n,
        "client_errors": len(errors),
        "client_error_rate": len(errors) / n if n else None,
        "upstream_requests": len(ups),
        "upstream_failures": len(failures),
        "upstream_failures_by_kind": dict(Counter(r.outcome for r in failures)),
        "a_tried": sum(1 for s in mine if tried_a.get(s.index)),
        "a_share": sum(1 for s in mine if tried_a.get(s.index)) / n if n else None,
        "served_by": dict(Counter(s.deployment for s in mine if s.error is None)),
        "ttft_p50_ms": q(ttft, 50),
        "ttft_p99_ms": q(ttft, 99),
    }


def breaker_tables(runs: list[dict[str, Any]]) -> str:
    summary = [
        "| fault on A (30 %) | breaker | requests in fault period | client errors | client error % "
        "| upstream failures | A share after opening | opened after fault (s) | A requests "
        "before opening | times opened |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        f = run["fault_period"]
        after = next((p for p in run["phases"] if p["phase"] == "after breaker opened"), None)
        summary.append(
            f"| {run['fault']} | {run['variant']} | {f['requests']} "
            f"| {f['client_errors']} | {f['client_error_rate'] * 100:.2f} % "
            f"| {f['upstream_failures']} "
            f"| {fmt(after['a_share'] * 100 if after else None, '.1f')}"
            f"{' %' if after else ''} "
            f"| {fmt(run['opened_after_fault_s'], '.2f')} "
            f"| {run['a_requests_before_open'] if run['breaker'] else '-'} "
            f"| {run['opened_count']} |"
        )
    phases = [
        "| fault on A | breaker | phase | s | requests | client errors | client error % "
        "| upstream requests | upstream failures | A share | TTFT p50 ms | TTFT p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for p in run["phases"]:
            rate = p["client_error_rate"]
            phases.append(
                f"| {run['fault']} | {run['variant']} | {p['phase']} "
                f"| {p['seconds']:.1f} | {p['requests']} | {p['client_errors']} "
                f"| {fmt(None if rate is None else rate * 100, '.2f')} % "
                f"| {p['upstream_requests']} | {p['upstream_failures']} "
                f"| {fmt(None if p['a_share'] is None else p['a_share'] * 100, '.1f')} % "
                f"| {fmt(p['ttft_p50_ms'])} | {fmt(p['ttft_p99_ms'])} |"
            )
    timeline = ["Breaker of A, state changes (s after the fault started):", ""]
    for run in runs:
        if run["breaker"]:
            steps = ", ".join(
                f"{c['t_s']:.2f} {c['new']}" for c in run["state_changes"] if c["deployment"] == "A"
            )
            timeline.append(f"- {run['fault']}, breaker {run['variant']}: {steps or 'none'}")
    return "\n".join(summary) + "\n\n" + "\n".join(phases) + "\n\n" + "\n".join(timeline)


# --- (b) tiers ------------------------------------------------------------------


def words(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    total = 0
    while total < chars:
        w = rng.choice(WORDS)
        out.append(w)
        total += len(w) + 1
    return " ".join(out)


def workload(n: int, seed: int) -> list[dict[str, Any]]:
    """(category, body) per request: 70 % short, 15 % long-context, 15 % reasoning."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        u = rng.random()
        params: dict[str, Any] = {}
        if u < 0.70:
            category = "short chat"
            prompt = words(rng, rng.randint(60, 1200))
            max_tokens = rng.randint(30, 250)
        elif u < 0.85:
            category = "long context"
            prompt = words(rng, rng.randint(8000, 32000)) + "\n\nSummarise the document above."
            max_tokens = rng.randint(200, 600)
        else:
            category = "reasoning"
            prompt = "Prove or refute: " + words(rng, rng.randint(400, 2400))
            max_tokens = rng.randint(400, 1200)
            params["reasoning_effort"] = "high"
        messages = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": prompt},
        ]
        out.append(
            {
                "index": i,
                "category": category,
                "messages": messages,
                "max_tokens": max_tokens,
                "params": params,
            }
        )
    return out


def tier_configs(cluster: SimCluster) -> dict[str, Any]:
    return {
        "logging": {"level": "warning"},
        "latency": {"prewarm": {"enabled": False}},
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": cluster.base_url("sim"),
                "api_key": "sim-key",
                "max_connections": 256,
            }
        },
        "deployments": {
            name: {
                "provider": "sim",
                "model": f"model-{name}",
                "price": {"input": pin, "output": pout},
            }
            for name, (pin, pout) in PRICES.items()
        },
        "routes": {
            "tiered": {
                "strategy": "fallback",
                "deployments": ["premium"],  # never used: the tiers cover every request
                "tiers": [
                    {"name": "reasoning", "when": {"reasoning": True}, "deployments": ["premium"]},
                    {
                        "name": "long",
                        "when": {"min_prompt_tokens": TIER_SPLIT + 1},
                        "deployments": ["premium"],
                    },
                    {
                        "name": "short",
                        "when": {"max_prompt_tokens": TIER_SPLIT},
                        "deployments": ["cheap"],
                    },
                ],
            },
            "premium-only": {"strategy": "fallback", "deployments": ["premium"]},
        },
    }


async def metric_by_route(http: aiohttp.ClientSession, url: str, name: str) -> dict[str, float]:
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            route = labels.split('route="', 1)[1].split('"', 1)[0]
            out[route] = out.get(route, 0.0) + float(value)
    return out


async def tier_bench(requests: int, concurrency: int) -> dict[str, Any]:
    model = {"ttft_ms": 5.0, "itl_ms": 0.0, "tokens": 1200}
    sim_data = {
        "seed": SEED,
        "servers": {"sim": {"kind": "openai", "models": {f"model-{n}": model for n in PRICES}}},
    }
    sim_config, problems = parse_sim_config(sim_data)
    if sim_config is None:
        raise SystemExit("bad sim config:\n" + "\n".join(problems))
    jobs = workload(requests, SEED)
    results: dict[str, Any] = {}
    async with SimCluster(sim_config) as cluster:
        gateway = Gateway(parse_config(tier_configs(cluster), env={}))
        collector = Collector()
        gateway.add_observer(collector)
        runner, url = await start_server(gateway, "127.0.0.1", 0)
        try:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                chat_url = f"{url}/v1/chat/completions"
                for route in ("tiered", "premium-only"):
                    print(f"tiers: {requests} requests on route {route}", file=sys.stderr)
                    spend0 = dict(gateway.spend_by_deployment)
                    started = time.monotonic()
                    samples = await run_jobs(http, chat_url, route, jobs, concurrency)
                    took = time.monotonic() - started
                    for _ in range(100):  # race records land just after the response ends
                        if sum(1 for k in collector.records if k.startswith(route)) >= len(jobs):
                            break
                        await asyncio.sleep(0.02)
                    spend = {
                        d: gateway.spend_by_deployment.get(d, 0.0) - spend0.get(d, 0.0)
                        for d in PRICES
                    }
                    results[route] = tier_result(
                        route, jobs, samples, collector.records, spend, took
                    )
                metric = await metric_by_route(http, url, "gateway_cost_usd_total")
        finally:
            await runner.cleanup()
    for route, res in results.items():
        res["metric_cost_usd"] = metric.get(route, 0.0)
    return {"routes": results, "requests": requests, "concurrency": concurrency}


async def run_jobs(
    http: aiohttp.ClientSession,
    url: str,
    route: str,
    jobs: list[dict[str, Any]],
    concurrency: int,
) -> list[Sample]:
    queue = list(reversed(jobs))
    samples: list[Sample] = []

    async def worker() -> None:
        while queue:
            job = queue.pop()
            body = orjson.dumps(
                {
                    "model": route,
                    "messages": job["messages"],
                    "max_tokens": job["max_tokens"],
                    "stream": True,
                    **job["params"],
                }
            )
            sample = await send(http, url, body, job["index"], f"{route}-{job['index']}")
            sample.extra["category"] = job["category"]
            samples.append(sample)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(samples, key=lambda s: s.index)


def tier_result(
    route: str,
    jobs: list[dict[str, Any]],
    samples: list[Sample],
    records: dict[str, RaceRecord],
    spend: dict[str, float],
    took: float,
) -> dict[str, Any]:
    by_cat: dict[str, dict[str, Any]] = {}
    served: Counter[str] = Counter()
    expected_total = 0.0
    in_tokens = out_tokens = 0
    for job, sample in zip(jobs, samples, strict=True):
        record = records.get(f"{route}-{job['index']}")
        cost = sum(a.cost_usd for a in record.attempts) if record else 0.0
        deployment = sample.deployment or "?"
        served[deployment] += 1
        cat = by_cat.setdefault(
            job["category"], {"requests": 0, "cost_usd": 0.0, "served_by": Counter()}
        )
        cat["requests"] += 1
        cat["cost_usd"] += cost
        cat["served_by"][deployment] += 1
        if record:
            for a in record.attempts:
                in_tokens += a.input_tokens
                out_tokens += a.output_tokens
        # what the simulator bills by construction: ceil(prompt chars / 4) in, max_tokens out
        pin, pout = PRICES.get(deployment, (0.0, 0.0))
        prompt = max(1, math.ceil(text_chars(job["messages"]) / 4))
        expected_total += (prompt * pin + job["max_tokens"] * pout) / 1e6
    total = sum(spend.values())
    n = len(samples)
    return {
        "route": route,
        "requests": n,
        "errors": sum(1 for s in samples if s.error is not None),
        "seconds": took,
        "cost_usd": total,
        "cost_per_request_usd": total / n if n else None,
        "spend_by_deployment": spend,
        "served_by": dict(served),
        "share_by_deployment": {d: c / n for d, c in served.items()},
        "expected_cost_usd": expected_total,
        "input_tokens": in_tokens,
        "output_tokens": out_tokens,
        "by_category": {
            k: {**v, "served_by": dict(v["served_by"])} for k, v in sorted(by_cat.items())
        },
    }


def tier_tables(out: dict[str, Any]) -> str:
    routes = out["routes"]
    premium = routes["premium-only"]["cost_usd"]
    lines = [
        "| route | requests | errors | total cost USD | cost / request USD | vs premium-only "
        "| share cheap | share premium | input tokens | output tokens "
        "| gateway_cost_usd_total | expected from tokens |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in routes.items():
        share = r["share_by_deployment"]
        lines.append(
            f"| {name} | {r['requests']} | {r['errors']} | {r['cost_usd']:.4f} "
            f"| {r['cost_per_request_usd']:.6f} | {r['cost_usd'] / premium * 100:.1f} % "
            f"| {share.get('cheap', 0.0) * 100:.1f} % | {share.get('premium', 0.0) * 100:.1f} % "
            f"| {r['input_tokens']} | {r['output_tokens']} | {r['metric_cost_usd']:.4f} "
            f"| {r['expected_cost_usd']:.4f} |"
        )
    cats = [
        "| route | category | requests | served by | cost USD | share of route cost "
        "| cost / request USD |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in routes.items():
        for cat, c in r["by_category"].items():
            served = ", ".join(f"{d} {k}" for d, k in sorted(c["served_by"].items()))
            cats.append(
                f"| {name} | {cat} | {c['requests']} | {served} | {c['cost_usd']:.4f} "
                f"| {c['cost_usd'] / r['cost_usd'] * 100:.1f} % "
                f"| {c['cost_usd'] / c['requests']:.6f} |"
            )
    return "\n".join(lines) + "\n\n" + "\n".join(cats)


# --- main -------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging("json", "warning")
    healthy_s, failing_s = (2.0, 8.0) if args.quick else (args.healthy, args.failing)
    runs = []
    for fault in FAULTS:
        for variant in VARIANTS:
            if variant == "on, 10 probes" and "cut" not in fault:
                continue  # retried failures are invisible to clients either way
            print(
                f"breaker {variant}, fault {fault}: "
                f"{args.rate:g}/s for {healthy_s:g}+{failing_s:g} s",
                file=sys.stderr,
            )
            runs.append(
                await breaker_run(fault, variant, args.rate, healthy_s, failing_s, args.cooldown)
            )
    requests = 200 if args.quick else args.requests
    tiers = await tier_bench(requests, args.concurrency)
    return {"breaker_runs": runs, "tiers": tiers}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0, help="(a) requests per second")
    parser.add_argument("--healthy", type=float, default=4.0, help="(a) seconds before the fault")
    parser.add_argument("--failing", type=float, default=20.0, help="(a) seconds of fault")
    parser.add_argument("--cooldown", type=float, default=5.0, help="(a) breaker cooldown_s")
    parser.add_argument("--requests", type=int, default=1000, help="(b) requests per route")
    parser.add_argument("--concurrency", type=int, default=16, help="(b) closed-loop workers")
    parser.add_argument("--quick", action="store_true", help="short phases, 200 requests")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        out = uvloop.run(bench(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    took = time.monotonic() - started
    out["seconds"] = took
    out["python"] = platform.python_version()
    runs = out["breaker_runs"]
    first = runs[0]
    text = "\n".join(
        [
            f"(a) Fallback route [A, B, C], A primary; open loop {first['rate']:g} req/s, "
            f"{first['healthy_s']:g} s healthy then {first['failing_s']:g} s with A failing 30 % "
            f"of its requests. Breaker on: health window {BREAKER['window']}, min_requests "
            f"{BREAKER['min_requests']}, error budget 0.05, cooldown "
            f"{first['health']['cooldown_s']:g} s (doubled per failed half-open round), "
            "3 probes (10 in 'on, 10 probes'); off: window = min_requests = "
            "10^9. Aim (issue 7): client-visible errors under 0.1 %.",
            "",
            breaker_tables(runs),
            "",
            "A share = client requests of the phase (by due time) whose race included an "
            "attempt on A (gateway RaceRecords; 100 % = every request tried A first). Upstream "
            "requests and failures (the simulator's 500s and cut streams, all deployments) "
            "are counted by arrival time at the simulator. The failures before the first "
            "token are retried on B by the fallback; a cut after the first token reaches "
            "the client as an error event.",
            "",
            f"(b) Tiered routing vs premium only: {out['tiers']['requests']} requests per route "
            f"(closed loop, {out['tiers']['concurrency']} workers), the same request list; cheap "
            f"{PRICES['cheap'][0]:g}/{PRICES['cheap'][1]:g}, premium {PRICES['premium'][0]:g}/"
            f"{PRICES['premium'][1]:g} USD per M input/output tokens; tier split at "
            f"{TIER_SPLIT} estimated prompt tokens or reasoning_effort high.",
            "",
            tier_tables(out["tiers"]),
            "",
            "Cost = the gateway's per-attempt accounting (usage x price; spend_by_deployment "
            "deltas); gateway_cost_usd_total = the Prometheus counter per route; expected = "
            "ceil(prompt chars / 4) input + max_tokens output, as the simulator counts them.",
            "",
            f"CPython {platform.python_version()}, {platform.machine()}; client, gateway and "
            f"simulators in one process; {took:.0f} s.",
        ]
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "routing.md").write_text(text + "\n")
    (args.out / "routing.json").write_bytes(to_json_bytes(out) + b"\n")
    print(f"\nwrote {args.out / 'routing.md'}, {args.out / 'routing.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
