"""Does a front door cost CPU? The same streamed load through each door, in one run.

    python -m bench.doors [--quick] [--json FILE]

Starts a simulator and the gateway as separate processes (as bench.overhead does) and
sends identical rounds of streaming requests (c=50; TTFT 100 ms, ITL 5 ms, 50 tokens from
one OpenAI-kind upstream) through `/v1/chat/completions`, `/v1/responses` and
`/v1/messages`, rotating the door order round by round so drift hits each alike. The
gateway's utime+stime is read from /proc around each door's rounds: CPU per request is
what that door's parse, pipeline and encoder cost, everything else being equal. The
client reads every byte of every stream (no SDK parsing: its CPU is not measured).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
import yaml

from bench.procs import Child, Children, cpu_seconds, free_port, machine_busy_seconds

ROOT = Path(__file__).resolve().parent.parent
MODEL = "bench-ttft100"
API_KEY = "bench-key"
PROMPT = "Say something about latency."


@dataclass(frozen=True, slots=True)
class Door:
    name: str
    path: str
    headers: dict[str, str]
    body: bytes


DOORS = (
    Door(
        "chat",
        "/v1/chat/completions",
        {},
        orjson.dumps(
            {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
        ),
    ),
    Door(
        "responses",
        "/v1/responses",
        {},
        orjson.dumps({"model": MODEL, "stream": True, "input": PROMPT}),
    ),
    Door(
        "messages",
        "/v1/messages",
        {"anthropic-version": "2023-06-01"},
        orjson.dumps(
            {
                "model": MODEL,
                "stream": True,
                "max_tokens": 256,
                "messages": [{"role": "user", "content": PROMPT}],
            }
        ),
    ),
)


def write_config(directory: Path, sim_port: int, gw_port: int) -> Path:
    config = {
        "listen": {"host": "127.0.0.1", "port": gw_port},
        "auth": {"keys": [API_KEY]},
        "logging": {"format": "json", "level": "info"},
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{sim_port}/v1",
                "api_key": API_KEY,
                "max_connections": 512,
            }
        },
        "deployments": {MODEL: {"provider": "sim", "model": MODEL}},
        "sim": {
            "seed": 1,
            "servers": {
                "sim": {
                    "kind": "openai",
                    "port": sim_port,
                    "models": {MODEL: {"ttft_ms": 100, "itl_ms": 5, "tokens": 50}},
                }
            },
        },
    }
    path = directory / "bench-doors.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def one(session: aiohttp.ClientSession, url: str, door: Door) -> int:
    headers = {"content-type": "application/json", "x-api-key": API_KEY, **door.headers}
    async with session.post(url + door.path, data=door.body, headers=headers) as resp:
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
        if resp.status != 200:
            raise RuntimeError(f"{door.name}: HTTP {resp.status}")
        return size


async def load(url: str, door: Door, concurrency: int, requests: int) -> float:
    """Send `requests` streams, `concurrency` at a time; the elapsed seconds."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(range(requests))
        started = time.perf_counter()

        async def worker() -> None:
            for _ in queue:
                await one(session, url, door)

        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
        return time.perf_counter() - started


async def bench(url: str, gw_pid: int, sim_pid: int, rounds: int, requests: int) -> dict[str, Any]:
    totals = {door.name: {"cpu_s": 0.0, "requests": 0, "elapsed_s": 0.0} for door in DOORS}
    foreign = {door.name: 0.0 for door in DOORS}
    for door in DOORS:  # warm-up: connections, caches, the first import of each door
        await load(url, door, 10, 20)
    for round_no in range(rounds):
        shift = round_no % len(DOORS)
        for door in DOORS[shift:] + DOORS[:shift]:
            busy0, cpu0, client0 = machine_busy_seconds(), cpu_seconds(gw_pid), time.process_time()
            sim0 = cpu_seconds(sim_pid)
            elapsed = await load(url, door, 50, requests)
            cpu = cpu_seconds(gw_pid) - cpu0
            own = cpu + time.process_time() - client0 + cpu_seconds(sim_pid) - sim0
            foreign[door.name] += max(0.0, machine_busy_seconds() - busy0 - own)
            tally = totals[door.name]
            tally["cpu_s"] += cpu
            tally["requests"] += requests
            tally["elapsed_s"] += elapsed
    chat = totals["chat"]["cpu_s"] / totals["chat"]["requests"]
    rows = []
    for door in DOORS:
        tally = totals[door.name]
        per = tally["cpu_s"] / tally["requests"]
        rows.append(
            {
                "door": door.name,
                "requests": tally["requests"],
                "cpu_ms_per_request": round(per * 1000, 3),
                "vs_chat": round(per / chat, 3),
                "requests_per_s": round(tally["requests"] / tally["elapsed_s"], 1),
                "other_processes_cpu_s": round(foreign[door.name], 2),
            }
        )
    lines = [
        "| door | requests | gateway CPU ms / request | vs chat | req/s | other processes CPU s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['door']} | {row['requests']} | {row['cpu_ms_per_request']:.3f} | "
            f"{row['vs_chat']:.2f} | {row['requests_per_s']:.0f} | "
            f"{row['other_processes_cpu_s']:.1f} |"
        )
    return {"rows": rows, "markdown": "\n".join(lines)}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rounds, requests = (2, 100) if args.quick else (3, 1000)
    sim_port, gw_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="bench-doors-") as tmp, Children() as children:
        directory = Path(tmp)
        config = write_config(directory, sim_port, gw_port)
        sim: Child = children.start(
            "sim", ["-m", "gateway", "sim", "--config", str(config)], directory / "sim.log", ROOT
        )
        gw: Child = children.start(
            "gateway",
            ["-m", "gateway", "serve", "--config", str(config)],
            directory / "gateway.log",
            ROOT,
        )
        sim.wait_http(f"http://127.0.0.1:{sim_port}/v1/models")
        gw.wait_http(f"http://127.0.0.1:{gw_port}/healthz")
        started = time.monotonic()
        url = f"http://127.0.0.1:{gw_port}"
        out = uvloop.run(bench(url, gw.pid, sim.pid, rounds, requests))
        took = time.monotonic() - started
    env = (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; client, simulator and gateway share them; {took:.0f} s"
    )
    print(out["markdown"])
    print(f"\n{env}. c=50, TTFT 100 ms, ITL 5 ms, 50 tokens; rounds rotate the door order.")
    if args.json:
        out["environment"] = env
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
