"""Everything down: what 1,000 client requests cost the providers that asked us to wait.

    python -m bench.shedding [--requests N] [--concurrency C]

Everything runs in this process (SimCluster + Gateway + start_server on 127.0.0.1). Three
deployments on a fallback route answer every request with 429 and `retry-after: 30`, so after
the first request all three are cooling. Then N client requests are sent, C at a time:

- "probe per request" (`health.probe_interval_s` 1 µs: what the gateway did before shedding,
  one forced probe per client request),
- "shedding" (the default `probe_interval_s: 1`: one probe per deployment per second, every
  other request answered at once with 503 and retry-after).

Reported: upstream requests the simulators received, client statuses, and the client-side
latency of the answers (p50 / p99). Results: markdown on stdout and bench/results/shedding.json.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from gateway.config import parse_config
from gateway.loadtest.report import to_json_bytes
from gateway.runtime import Gateway
from gateway.server.app import start_server
from gateway.sim.config import parse_sim_config
from gateway.sim.server import SimCluster

RESULTS = Path(__file__).resolve().parent / "results"
DEPS = ("a", "b", "c")
MODEL = {"ttft_ms": 5, "itl_ms": 0, "tokens": 5, "error_rate_429": 1.0, "retry_after_s": 30}
VARIANTS = {"probe per request": 1e-6, "shedding (default)": 1.0}


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run(variant: str, interval_s: float, requests: int, concurrency: int) -> dict[str, Any]:
    sim_config, problems = parse_sim_config(
        {"seed": 3, "servers": {f"sim-{d}": {"kind": "openai", "models": {d: MODEL}} for d in DEPS}}
    )
    assert sim_config is not None, problems
    async with SimCluster(sim_config) as cluster:
        config = {
            "logging": {"level": "warning"},
            "latency": {"prewarm": {"enabled": False}},
            "providers": {
                f"sim-{d}": {
                    "kind": "openai",
                    "base_url": cluster.base_url(f"sim-{d}"),
                    "api_key": "sim-key",
                }
                for d in DEPS
            },
            "deployments": {d: {"provider": f"sim-{d}", "model": d} for d in DEPS},
            "routes": {"chat": {"strategy": "fallback", "deployments": list(DEPS)}},
            "health": {"probe_interval_s": interval_s},
        }
        gateway = Gateway(parse_config(config, env={}))
        runner, url = await start_server(gateway, "127.0.0.1", 0)
        body = orjson.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
        headers = {"Content-Type": "application/json"}
        statuses: Counter[int] = Counter()
        latencies: list[float] = []
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

                async def one() -> None:
                    t0 = time.perf_counter()
                    async with http.post(
                        f"{url}/v1/chat/completions", data=body, headers=headers
                    ) as r:
                        await r.read()
                        statuses[r.status] += 1
                    latencies.append(time.perf_counter() - t0)

                await one()  # every deployment answers 429 retry-after 30: all cool
                before = len(cluster.log.records)
                statuses.clear()
                latencies.clear()
                slots = asyncio.Semaphore(concurrency)

                async def bounded() -> None:
                    async with slots:
                        await one()

                t0 = time.perf_counter()
                await asyncio.gather(*(bounded() for _ in range(requests)))
                elapsed = time.perf_counter() - t0
                upstream = len(cluster.log.records) - before
        finally:
            await runner.cleanup()
    return {
        "variant": variant,
        "requests": requests,
        "upstream_requests": upstream,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": round(quantile(latencies, 0.5) * 1000, 2),
        "p99_ms": round(quantile(latencies, 0.99) * 1000, 2),
        "elapsed_s": round(elapsed, 3),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| variant | client requests | upstream requests | statuses | p50 ms | p99 ms "
        "| elapsed s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        statuses = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
        lines.append(
            f"| {r['variant']} | {r['requests']} | {r['upstream_requests']} | {statuses} "
            f"| {r['p50_ms']} | {r['p99_ms']} | {r['elapsed_s']} |"
        )
    return "\n".join(lines)


async def amain(requests: int, concurrency: int) -> list[dict[str, Any]]:
    return [await run(v, s, requests, concurrency) for v, s in VARIANTS.items()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    rows = uvloop.run(amain(args.requests, args.concurrency))
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shedding.json").write_bytes(to_json_bytes({"rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
