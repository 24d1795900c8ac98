"""A hung Redis costs nothing: TTFT and failures before, during and after a Redis freeze.

    python -m bench.redis_freeze [--rate 100] [--phase-s 5] [--ttft-ms 50]
                                 [--json bench/results/redis_freeze.json]

One private `redis-server` (free port, no persistence), one simulator process and one
gateway process (`state.backend: redis`, a per-key rpm, a per-deployment rpm and a daily
budget configured, so every request has rate-limit and budget work on Redis). This
process sends an open-loop stream of chat requests (`--rate` per second) through three
phases of `--phase-s` seconds: before; frozen (SIGSTOP on redis-server at the start of
the phase: it keeps its sockets but answers nothing, a hung Redis); after (SIGCONT).

It reports TTFT p50/p90/p99, failures and throughput per phase, how long Redis stayed
marked degraded (from /admin/deployments), and spend: the gateway's own per-deployment
total against the shared total in Redis, which must agree within 0.1 % although batches
sent during the freeze were answered only after it (they are resent and counted once).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
import yaml
from redis.asyncio import Redis

from bench.procs import Children, free_port
from gateway.loadtest.client import LoadSpec, run_spec

ADMIN = "bench-admin"
MODEL = "m"


def write_config(directory: Path, sim_port: int, gw_port: int, redis_port: int, ttft: int) -> Path:
    config = {
        "listen": {"host": "127.0.0.1", "port": gw_port},
        "logging": {"format": "json", "level": "warning"},
        "admin": {"key": ADMIN},
        "state": {"backend": "redis", "url": f"redis://127.0.0.1:{redis_port}/0", "prefix": "rgb"},
        "latency": {"prewarm": {"enabled": False}},
        "routing": {
            "key_rpm": 1_000_000,
            "key_daily_budget_usd": 1_000_000.0,
            "allow_direct_deployments": True,  # the load names the deployment
        },
        "providers": {
            "sim": {"kind": "openai", "base_url": f"http://127.0.0.1:{sim_port}/v1", "api_key": "k"}
        },
        "deployments": {
            MODEL: {
                "provider": "sim",
                "model": MODEL,
                "rpm": 1_000_000,
                "price": {"input": 100.0, "output": 200.0},
            }
        },
        "routes": {},
        "sim": {
            "seed": 1,
            "servers": {
                "sim": {
                    "kind": "openai",
                    "port": sim_port,
                    "models": {MODEL: {"ttft_ms": ttft, "itl_ms": 2, "tokens": 10}},
                }
            },
        },
    }
    path = directory / "redis-freeze.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def admin_deployments(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {ADMIN}"}
    async with http.get(f"{base}/admin/deployments", headers=headers) as resp:
        data: dict[str, Any] = orjson.loads(await resp.read())
        return data


async def watch_degraded(base: str, stop: asyncio.Event, seen: list[tuple[float, bool]]) -> None:
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            data = await admin_deployments(http, base)
            seen.append((time.monotonic(), bool(data["state_degraded"])))
            await asyncio.sleep(0.05)


async def bench(
    args: argparse.Namespace, gw_url: str, redis: subprocess.Popen[bytes], port: int
) -> dict[str, Any]:
    base = gw_url.removesuffix("/v1")
    stop = asyncio.Event()
    seen: list[tuple[float, bool]] = []
    watcher = asyncio.create_task(watch_degraded(base, stop, seen))
    phases: dict[str, Any] = {}
    marks: dict[str, float] = {}
    warm = LoadSpec(gw_url, MODEL, rate=args.rate, duration_s=1.0, timeout_s=10.0)
    await run_spec(warm, progress=False)
    for phase in ("before", "frozen", "after"):
        if phase == "frozen":
            redis.send_signal(signal.SIGSTOP)
        elif phase == "after":
            redis.send_signal(signal.SIGCONT)
        marks[phase] = time.monotonic()
        spec = LoadSpec(gw_url, MODEL, rate=args.rate, duration_s=args.phase_s, timeout_s=10.0)
        result = await run_spec(spec, progress=False)
        s = result.summary
        phases[phase] = {
            "requests": s.requests,
            "ok": s.ok,
            "errors": dict(s.errors),
            "requests_per_s": round(s.requests_per_s, 1),
            "ttft_p50_ms": s.ttft_ms.p50,
            "ttft_p90_ms": s.ttft_ms.p90,
            "ttft_p99_ms": s.ttft_ms.p99,
        }
    await asyncio.sleep(2.0)  # a few flushes after the thaw
    stop.set()
    await watcher
    degraded_at = [t for t, d in seen if d]
    cleared = next((t for t, d in seen if not d and t > marks["after"]), None)
    async with aiohttp.ClientSession() as http:
        local = sum(
            d["spend_usd"] for d in (await admin_deployments(http, base))["deployments"].values()
        )
    client = Redis(host="127.0.0.1", port=port)
    try:
        day = datetime.now(UTC).strftime("%Y%m%d")
        shared = float(await client.get(f"{{rgb:spend}}:anonymous:{day}") or 0.0)
    finally:
        await client.aclose()
    return {
        "phases": phases,
        "degraded_first_s_after_freeze": round(degraded_at[0] - marks["frozen"], 3)
        if degraded_at
        else None,
        "degraded_cleared_s_after_thaw": round(cleared - marks["after"], 3) if cleared else None,
        "spend_local_usd": round(local, 6),
        "spend_shared_usd": round(shared, 6),
        "spend_diff_pct": round(abs(shared - local) / local * 100, 4) if local else None,
    }


def render(out: dict[str, Any], env: str) -> str:
    lines = [
        "# Redis frozen (SIGSTOP) mid-load",
        "",
        f"{env}",
        "",
        "| phase | requests | failed | req/s | TTFT p50 | p90 | p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, p in out["phases"].items():
        failed = p["requests"] - p["ok"]
        lines.append(
            f"| {name} | {p['requests']} | {failed} | {p['requests_per_s']} | "
            f"{p['ttft_p50_ms']:.1f} ms | {p['ttft_p90_ms']:.1f} ms | {p['ttft_p99_ms']:.1f} ms |"
        )
    before, frozen = out["phases"]["before"]["ttft_p50_ms"], out["phases"]["frozen"]["ttft_p50_ms"]
    lines += [
        "",
        f"- TTFT p50 frozen vs before: {(frozen / before - 1) * 100:+.1f} %",
        f"- degraded seen {out['degraded_first_s_after_freeze']} s after the freeze; "
        f"cleared {out['degraded_cleared_s_after_thaw']} s after the thaw",
        f"- spend: gateway {out['spend_local_usd']} USD, Redis {out['spend_shared_usd']} USD "
        f"(diff {out['spend_diff_pct']} %)",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.redis_freeze", description=__doc__)
    p.add_argument("--rate", type=float, default=100.0, help="requests per second")
    p.add_argument("--phase-s", type=float, default=5.0, help="seconds per phase")
    p.add_argument("--ttft-ms", type=int, default=50, help="the simulator's TTFT")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    server = shutil.which("redis-server")
    if server is None:
        print("redis-server is not installed", file=sys.stderr)
        return 2
    sim_port, gw_port, redis_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="bench-freeze-") as tmp, Children() as children:
        directory = Path(tmp)
        redis = subprocess.Popen(
            [server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            config = write_config(directory, sim_port, gw_port, redis_port, args.ttft_ms)
            sim = children.gateway("sim", "sim", config, directory / "sim.log")
            gw = children.gateway("gateway", "serve", config, directory / "gateway.log")
            sim.wait_http(f"http://127.0.0.1:{sim_port}/v1/models")
            gw.wait_http(f"http://127.0.0.1:{gw_port}/healthz")
            out = uvloop.run(bench(args, f"http://127.0.0.1:{gw_port}/v1", redis, redis_port))
        finally:
            redis.send_signal(signal.SIGCONT)
            redis.terminate()
            redis.wait(timeout=10)
    env = (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"{args.rate:g} req/s open loop, {args.phase_s:g} s per phase, simulator TTFT "
        f"{args.ttft_ms} ms; key rpm, deployment rpm and a daily budget on Redis"
    )
    text = render(out, env)
    print(text)
    if args.json:
        args.json.write_text(orjson.dumps({"env": env, **out}, option=orjson.OPT_INDENT_2).decode())
        args.json.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
