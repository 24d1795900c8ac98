"""Three gateway instances on one local Redis Cluster, under load.

    python -m bench.cluster_scale [--limit 300] [--requests 600] [--concurrency 12]
                                  [--json bench/results/cluster_scale.json]

Starts a three-master Redis Cluster (tests/redis_servers.py: free ports, no persistence),
one simulator and three gateways in this process (each with its own Redis connection
layer, as separate processes would have), and reports:

- admitted vs limit: `--requests` chat requests spread round robin over the three, with
  a per-key rpm of `--limit` (and again with a per-deployment rpm of `--limit`);
- breaker propagation: a breaker opened on one instance, until the two others skip the
  deployment (median and max of 20 trials);
- Redis round trips per request on the request path (batches the request path sent /
  requests), with limits configured and with none (aim: at most one, and zero).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.gateways import fleet, spread
from tests.redis_servers import redis_cluster

FAST = {"ttft_ms": 2, "itl_ms": 0, "tokens": 3}


def state(url: str, budget_ms: float) -> dict[str, Any]:
    return {
        "backend": "redis",
        "url": url,
        "cluster": True,
        "prefix": f"b{uuid.uuid4().hex[:8]}",
        "request_timeout_ms": budget_ms,
    }


def batches(f: Any) -> int:
    return sum(gw.state.redis_layer.batcher.batches for gw in f.gateways)


async def limits(url: str, args: argparse.Namespace, key: bool) -> dict[str, Any]:
    deployments = {"a": {"rpm": args.limit}} if not key else {}
    routing = {"key_rpm": args.limit} if key else {}
    async with (
        fleet(
            3, {"a": FAST}, state(url, args.budget_ms), deployments=deployments, routing=routing
        ) as f,
        aiohttp.ClientSession() as http,
    ):
        start = batches(f)
        statuses = await spread(http, f.urls, args.requests, args.concurrency)
        trips = (batches(f) - start) / args.requests
        admitted = statuses.count(200) if key else len(f.sim.log.records)
        return {
            "limit": args.limit,
            "sent": args.requests,
            "admitted": admitted,
            "off_by_pct": round((admitted - args.limit) / args.limit * 100, 2),
            "round_trips_per_request": round(trips, 3),
            "budget_misses": sum(gw.state.redis_layer.budget_misses for gw in f.gateways),
        }


async def no_limits(url: str, args: argparse.Namespace) -> dict[str, Any]:
    async with (
        fleet(3, {"a": FAST}, state(url, args.budget_ms)) as f,
        aiohttp.ClientSession() as http,
    ):
        start = batches(f)
        statuses = await spread(http, f.urls, args.requests, args.concurrency)
        return {
            "sent": args.requests,
            "ok": statuses.count(200),
            "round_trips_per_request": round((batches(f) - start) / args.requests, 3),
        }


async def breaker(url: str, args: argparse.Namespace) -> dict[str, Any]:
    health = {"window": 20, "min_requests": 5, "cooldown_s": 30}
    async with fleet(3, {"a": FAST, "b": FAST}, state(url, args.budget_ms), health=health) as f:
        states = [gw.state for gw in f.gateways]
        await asyncio.sleep(0.5)  # subscribers up
        took = []
        for _ in range(20):
            for _ in range(10):
                states[0].health.record_failure("a", 503)
            start = time.monotonic()
            while not all(s.health.filter(["a", "b"]) == ["b"] for s in states[1:]):  # noqa: ASYNC110
                await asyncio.sleep(0.001)  # polled: the propagation time is what is measured
            took.append((time.monotonic() - start) * 1000)
            for s in states:
                s.health.breaker("a").reset()
            await asyncio.sleep(0.3)
        return {
            "trials": len(took),
            "p50_ms": round(statistics.median(took), 1),
            "max_ms": round(max(took), 1),
        }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with redis_cluster(masters=3) as procs:
        return {
            "key_rpm": await limits(procs.url, args, key=True),
            "deployment_rpm": await limits(procs.url, args, key=False),
            "no_limits": await no_limits(procs.url, args),
            "breaker_propagation": await breaker(procs.url, args),
        }


def render(out: dict[str, Any], env: str) -> str:
    k, d, n, b = out["key_rpm"], out["deployment_rpm"], out["no_limits"], out["breaker_propagation"]
    return "\n".join(
        [
            "# Three gateways on one Redis Cluster",
            "",
            env,
            "",
            "| limit | sent | admitted | off by | Redis round trips / request | over budget |",
            "|---|---:|---:|---:|---:|---:|",
            f"| key rpm {k['limit']} | {k['sent']} | {k['admitted']} | {k['off_by_pct']} % | "
            f"{k['round_trips_per_request']} | {k['budget_misses']} |",
            f"| deployment rpm {d['limit']} | {d['sent']} | {d['admitted']} | "
            f"{d['off_by_pct']} % | {d['round_trips_per_request']} | {d['budget_misses']} |",
            f"| none | {n['sent']} | {n['ok']} | - | {n['round_trips_per_request']} | - |",
            "",
            f"Breaker opened on one instance, skipped by the two others after "
            f"{b['p50_ms']} ms (median of {b['trials']}), {b['max_ms']} ms at most.",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cluster_scale", description=__doc__)
    p.add_argument("--limit", type=int, default=300)
    p.add_argument("--requests", type=int, default=600)
    p.add_argument("--concurrency", type=int, default=12)
    p.add_argument("--budget-ms", type=float, default=5.0, help="state.request_timeout_ms")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    out = asyncio.run(bench(args))
    env = (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"3 gateways + simulator + client in one process, 3-master cluster on the same "
        f"machine; request budget {args.budget_ms:g} ms; concurrency {args.concurrency}"
    )
    text = render(out, env)
    print(text)
    if args.json:
        args.json.write_text(orjson.dumps({"env": env, **out}, option=orjson.OPT_INDENT_2).decode())
        args.json.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
