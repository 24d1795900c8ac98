"""What a race's loser costs the gateway, in instructions: a k=2 race against one attempt.

    python -m bench.race_cost [--requests 100] [--winner-ttft-ms 20]

`bench.loser_cut` measures the k=2 cost end to end at c=200 (CPU seconds of the gateway
process, which move by about 0.1 ms a request from run to run). This counts it exactly:
the gateway runs in this process under `valgrind --tool=callgrind`, instrumented only
while the measured requests run, one at a time; the simulator runs in its own process
(not counted). Server `a` answers after `--winner-ttft-ms` with 5 tokens, server `b`
after 2 s, so in route `race2` (race k=2 over both) `b` always loses: it is connected,
sent and has its response open when `a`'s first token cuts it (a winner TTFT of 0 cuts
it earlier, often before its request is sent). Route `single` is one attempt on `a`.
The client's work is the same in both routes, so race2 minus single is the loser: a new
connection (a cut HTTP/1.1 connection cannot be reused), its request, its response's
head and role chunk, its cut and its record. Kernel time (the connect and the cut) is
not counted by callgrind; `--no-callgrind` prints this process's CPU seconds instead
(under callgrind they are valgrind's).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import orjson
import uvloop
import yaml

from bench.procs import Children, callgrind_instrument, free_port, run_counted

ROOT = Path(__file__).resolve().parent.parent
ROUTES = ("single", "race2")
WARM = 30  # requests per route before the measured ones: connections, caches, profiles


def sim_config(ports: dict[str, int], winner_ttft_ms: float) -> dict[str, object]:
    shapes: dict[str, dict[str, float]] = {"a": {"ttft_ms": winner_ttft_ms}, "b": {"ttft_ms": 2000}}
    return {
        "sim": {
            "seed": 1,
            "servers": {
                name: {
                    "kind": "openai",
                    "port": port,
                    "models": {f"m-{name}": {**shapes[name], "itl_ms": 0, "tokens": 5}},
                }
                for name, port in ports.items()
            },
        }
    }


def gateway_config(ports: dict[str, int]) -> dict[str, object]:
    return {
        "logging": {"format": "json", "level": "info"},
        "latency": {"prewarm": {"enabled": False}},
        "providers": {
            name: {"kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "api_key": "k"}
            for name, port in ports.items()
        },
        "deployments": {f"m-{name}": {"provider": name, "model": f"m-{name}"} for name in ports},
        "routes": {
            "single": {"strategy": "fallback", "deployments": ["m-a"]},
            "race2": {"strategy": "race", "k": 2, "deployments": ["m-a", "m-b"]},
        },
    }


async def run(route: str, requests: int, ports: dict[str, int]) -> tuple[float, float]:
    """CPU seconds of this process for `requests` streamed requests on `route`, one at a
    time, and the losers cut among them (from the gateway's own attempt counter)."""
    from gateway.config import parse_config
    from gateway.logs import configure_logging
    from gateway.runtime import Gateway
    from gateway.server.app import start_server

    configure_logging("json", "info")  # as `serve` does: one access-log line per request
    gateway = Gateway(parse_config(gateway_config(ports), env={}))
    runner, url = await start_server(gateway, "127.0.0.1", 0)
    session = aiohttp.ClientSession()
    headers = {"Content-Type": "application/json"}

    async def one(text: str) -> None:
        body = {"model": route, "stream": True, "messages": [{"role": "user", "content": text}]}
        async with session.post(
            f"{url}/v1/chat/completions", data=orjson.dumps(body), headers=headers
        ) as response:
            assert response.status == 200, response.status
            assert b"[DONE]" in await response.read()

    def cut() -> float:
        labels = {"deployment": "m-b", "outcome": "cancelled"}
        return (
            gateway.metrics.registry.get_sample_value("gateway_upstream_attempts_total", labels)
            or 0.0
        )

    try:
        for i in range(WARM):
            await one(f"warm-{i}")
        gc.freeze()  # as `serve` does after start-up
        gc.set_threshold(50_000, 20, 100)
        before = cut()
        callgrind_instrument(True)
        started = time.process_time()
        for i in range(requests):
            await one(f"req-{i}")
        cpu = time.process_time() - started
        callgrind_instrument(False)
        return cpu, cut() - before
    finally:
        await session.close()
        await runner.cleanup()


def _measure(
    route: str, requests: int, ports: dict[str, int], callgrind: bool
) -> tuple[int, float, float]:
    """(instructions or 0, CPU seconds, losers cut) for `route`, in a fresh process."""
    command = [sys.executable, "-m", "bench.race_cost", "--child", route]
    command += ["--requests", str(requests), "--ports", f"{ports['a']},{ports['b']}"]
    instructions, out = run_counted(command, callgrind)
    cpu, losers = (float(x) for x in out.split("result ")[-1].split())
    return instructions, cpu, losers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.race_cost", description=__doc__)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--winner-ttft-ms", type=float, default=20.0)
    parser.add_argument("--no-callgrind", action="store_true", help="CPU seconds only")
    parser.add_argument("--child", choices=ROUTES, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        a, b = (int(p) for p in args.ports.split(","))
        cpu, losers = uvloop.run(run(args.child, args.requests, {"a": a, "b": b}))
        print(f"result {cpu} {losers}")
        return 0
    ports = {"a": free_port(), "b": free_port()}
    with tempfile.TemporaryDirectory(prefix="bench-race-cost-") as tmp, Children() as children:
        config = Path(tmp) / "sim.yaml"
        config.write_text(yaml.safe_dump(sim_config(ports, args.winner_ttft_ms)))
        sim = children.gateway("sim", "sim", config, Path(tmp) / "sim.log")
        sim.wait_port(ports["b"])
        rows = {
            route: _measure(route, args.requests, ports, not args.no_callgrind) for route in ROUTES
        }
    n = args.requests
    print("| route | instructions per request | CPU ms per request | losers cut per request |")
    print("|---|---|---|---|")
    for route, (instructions, cpu, losers) in rows.items():
        counted = f"{instructions / n:,.0f}" if instructions else "-"
        print(f"| {route} | {counted} | {cpu * 1000 / n:.3f} | {losers / n:.2f} |")
    (i1, c1, _), (i2, c2, _) = rows["single"], rows["race2"]
    extra = f"{(i2 - i1) / n:+,.0f}" if i1 and i2 else "-"
    print(f"| race2 minus single | {extra} | {(c2 - c1) * 1000 / n:+.3f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
