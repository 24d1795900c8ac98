"""Where a streamed request's first token spends its time, leg by leg.

    python -m bench.ttft_legs [--upstream http1|http2] [--concurrency 50] [--requests 2000]

The setting of `bench.loser_cut` (one simulator process, TTFT 100 ms; one gateway
process; the `single` route, one attempt), closed-loop clients. Every request carries
its own prompt, which the simulator logs with its arrival and first-token times; the
client, the gateway and the simulator share this machine's monotonic clock, so each
request splits into:

- up: the client's send to the simulator's arrival (the gateway's request path, and the
  simulator's accept and handler dispatch);
- sim: the simulator's arrival to its first token (the model's TTFT, 100 ms, and any
  lateness of its loop);
- down: the simulator's first token written to the client's first body bytes (the
  gateway's stream path).

A warm-up of 100 requests comes first and is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import orjson
import uvloop

from bench import loser_cut
from bench.procs import REPO, Children, free_port


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(
    url: str, requests: int, concurrency: int, tag: str
) -> dict[str, tuple[float, float]]:
    """Prompt -> (sent, first body bytes) on the monotonic clock."""
    times: dict[str, tuple[float, float]] = {}
    headers = {"Authorization": f"Bearer {loser_cut.API_KEY}", "Content-Type": "application/json"}
    left = iter(range(requests))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def worker() -> None:
            for i in left:
                prompt = f"{tag}-{i}"
                body = orjson.dumps(
                    {
                        "model": "single",
                        "stream": True,
                        "messages": [{"role": "user", "content": prompt}],
                    }
                )
                sent = time.monotonic()
                async with http.post(url, data=body, headers=headers) as resp:
                    await resp.content.readany()
                    times[prompt] = (sent, time.monotonic())
                    await resp.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times


async def bench(gw_url: str, sim_url: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    url = gw_url + "/v1/chat/completions"
    await _load(url, 100, args.concurrency, "warm")
    async with aiohttp.ClientSession() as http:
        await (await http.post(sim_url + "/_sim/reset")).read()
        times = await _load(url, args.requests, args.concurrency, "leg")
        log = orjson.loads(await (await http.get(sim_url + "/_sim/log")).read())
    records = log["records"] if isinstance(log, dict) else log
    legs: dict[str, list[float]] = {"up": [], "sim": [], "down": []}
    for record in records:
        seen = times.get(record["last_user_text"])
        if seen is None or record["first_token"] is None:
            continue
        legs["up"].append((record["arrival"] - seen[0]) * 1000)
        legs["sim"].append((record["first_token"] - record["arrival"]) * 1000)
        legs["down"].append((seen[1] - record["first_token"]) * 1000)
    return {
        leg: {q: _pct(v, p) for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
        | {"max": max(v), "n": len(v)}
        for leg, v in legs.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ttft_legs", description=__doc__)
    parser.add_argument("--upstream", choices=("http1", "http2"), default="http1")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    ports = {"a": free_port(), "b": free_port(), "ctl": free_port()}
    gw_port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-legs-") as tmp, Children() as children:
        directory = Path(tmp)
        config = loser_cut.write_config(
            directory, ports, gw_port, "openai", args.upstream == "http2"
        )
        sim = children.gateway("sim", "sim", config, directory / "sim.log")
        gateway = children.start(
            "gateway",
            ["-m", "gateway", "serve", "--config", str(config)],
            directory / "gw.log",
            REPO,
        )
        sim_url = f"http://127.0.0.1:{ports['ctl']}"
        sim.wait_http(sim_url + "/v1/models")
        gateway.wait_http(f"http://127.0.0.1:{gw_port}/healthz")
        out = uvloop.run(bench(f"http://127.0.0.1:{gw_port}", sim_url, args))
    print(
        f"{args.upstream}, c={args.concurrency}, {out['up']['n']:g} requests; "
        "ms p50 / p90 / p99 / max"
    )
    for leg, q in out.items():
        print(f"  {leg:4s} {q['p50']:7.2f} {q['p90']:7.2f} {q['p99']:7.2f} {q['max']:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
