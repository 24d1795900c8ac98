"""What the coalescing window (`stream.coalesce_ms`) does to CPU and to the chunks a client sees.

    python -m bench.coalesce [--quick] [--window-ms 2] [--cases c=1/itl5,...] [--json FILE]

Starts one simulator and two gateways from generated configs (temp dir, free ports):
one with coalescing off, one with `stream: {coalesce_ms: WINDOW}`. Each case sends
identical rounds of streaming chat requests to both gateways, alternating which goes
first round by round, and charges each gateway process's utime+stime (from /proc) to its
own rounds.

The client is this process (aiohttp on uvloop, like gateway.loadtest) and times every
socket read as it arrives (`StreamTimer`, the load tool's own timer):
- TTFT p50/p99: the first token must not move when the window is on;
- token gap p50/p99: between successive content chunks (0 for chunks of one read);
- update gap p50/p99: between successive reads that carried content, i.e. how often
  the text on a screen changes;
- reads/req: reads that carried content, per request; events/req: SSE data events;
- total p50: until the end of the body (the last chunk may wait up to one window).

Upstreams: TTFT 100 ms, 50 tokens, 5 ms between tokens (the normal case of
bench.overhead), 1 ms (a fast one) and 0 (all tokens at once), at concurrency 1 and 50.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
import yaml

from bench.overhead import fmt
from bench.procs import Children, cpu_seconds, free_port, machine_busy_seconds
from gateway.loadtest import distribution, make_session
from gateway.loadtest.report import to_json_bytes
from gateway.loadtest.timing import StreamTimer

API_KEY = "bench-key"
UPSTREAMS = {
    "itl5": {"ttft_ms": 100, "itl_ms": 5, "tokens": 50},
    "itl1": {"ttft_ms": 100, "itl_ms": 1, "tokens": 50},
    "itl0": {"ttft_ms": 100, "itl_ms": 0, "tokens": 50},
}
BODY = {"messages": [{"role": "user", "content": "Say something about latency."}], "stream": True}


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    model: str  # a key of UPSTREAMS
    concurrency: int
    requests: int  # per round and gateway
    rounds: int


FULL = (
    Case("c=1/itl5", "itl5", 1, 60, 3),
    Case("c=1/itl1", "itl1", 1, 60, 3),
    Case("c=1/itl0", "itl0", 1, 60, 3),
    Case("c=50/itl5", "itl5", 50, 600, 3),
    Case("c=50/itl1", "itl1", 50, 600, 3),
    Case("c=50/itl0", "itl0", 50, 600, 3),
)
QUICK = (
    Case("c=1/itl5", "itl5", 1, 10, 2),
    Case("c=1/itl1", "itl1", 1, 10, 2),
    Case("c=1/itl0", "itl0", 1, 10, 2),
    Case("c=50/itl5", "itl5", 50, 150, 2),
    Case("c=50/itl1", "itl1", 50, 150, 2),
    Case("c=50/itl0", "itl0", 50, 150, 2),
)


@dataclass(slots=True)
class Sample:
    ttft_s: float | None = None
    total_s: float | None = None
    token_gaps: list[float] = field(default_factory=list)
    update_gaps: list[float] = field(default_factory=list)
    reads: int = 0  # reads that carried content
    events: int = 0
    error: str | None = None


@dataclass(slots=True)
class Tally:
    samples: list[Sample] = field(default_factory=list)
    cpu_s: float = 0.0
    foreign_s: float = 0.0
    elapsed_s: float = 0.0


async def one(session: aiohttp.ClientSession, url: str, body: bytes) -> Sample:
    sample = Sample()
    started = time.perf_counter()
    timer = StreamTimer(started)
    last_update: float | None = None
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                sample.error = f"http_{resp.status}"
                return sample
            async for data in resp.content.iter_any():
                now = time.perf_counter()
                before = timer.tokens
                timer.feed(data, now)
                if timer.tokens > before:
                    sample.reads += 1
                    if last_update is not None:
                        sample.update_gaps.append(now - last_update)
                    last_update = now
        timer.close()
    except (aiohttp.ClientError, OSError) as exc:
        sample.error = type(exc).__name__
        return sample
    sample.error = timer.error
    sample.ttft_s = timer.ttft
    sample.total_s = time.perf_counter() - started
    sample.token_gaps = timer.gaps
    sample.events = timer.events
    return sample


async def load(
    session: aiohttp.ClientSession, url: str, body: bytes, concurrency: int, requests: int
) -> list[Sample]:
    samples: list[Sample] = []
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            samples.append(await one(session, url, body))

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return samples


async def run_case(
    case: Case, gateways: dict[str, tuple[str, int]], sim_pid: int
) -> dict[str, Tally]:
    """Alternating rounds; each gateway's CPU charged to its own rounds, and the CPU that
    processes other than the simulator, the gateways and this client used meanwhile."""
    own_pids = [sim_pid, *(pid for _, pid in gateways.values())]
    body = orjson.dumps({**BODY, "model": case.model})
    sessions = {name: make_session(case.concurrency) for name in gateways}
    tallies = {name: Tally() for name in gateways}
    order = list(gateways)
    try:
        for name, (url, _) in gateways.items():  # warm-up: open the connections
            await load(sessions[name], url, body, case.concurrency, case.concurrency)
        for r in range(case.rounds):
            for name in order if r % 2 == 0 else reversed(order):
                url, pid = gateways[name]
                own0 = sum(cpu_seconds(p) for p in own_pids)
                busy0, cpu0, client0 = machine_busy_seconds(), cpu_seconds(pid), time.process_time()
                t0 = time.perf_counter()
                samples = await load(sessions[name], url, body, case.concurrency, case.requests)
                elapsed = time.perf_counter() - t0
                cpu = cpu_seconds(pid) - cpu0
                own = sum(cpu_seconds(p) for p in own_pids) - own0
                client = time.process_time() - client0
                tally = tallies[name]
                tally.samples.extend(samples)
                tally.cpu_s += cpu
                tally.elapsed_s += elapsed
                tally.foreign_s += max(machine_busy_seconds() - busy0 - own - client, 0.0)
                print(
                    f"  {case.name:<10} round {r + 1} {name:<4} {len(samples) / elapsed:6.1f} req/s"
                    f"  CPU {cpu * 1000 / len(samples):5.2f} ms/req",
                    file=sys.stderr,
                )
    finally:
        for session in sessions.values():
            await session.close()
    return tallies


def table(results: dict[str, dict[str, Tally]]) -> tuple[str, list[dict[str, Any]]]:
    lines = [
        "| case | coalescing | requests | TTFT p50 ms | TTFT p99 ms | token gap p50 ms "
        "| token gap p99 ms | update gap p50 ms | update gap p99 ms | reads/req | events/req "
        "| total p50 ms | CPU ms/req (gw) | errors | other processes, % of a core |",
        "|" + "---|" * 15,
    ]
    rows: list[dict[str, Any]] = []
    for case, tallies in results.items():
        for name, tally in tallies.items():
            ok = [s for s in tally.samples if s.error is None]
            n = len(tally.samples)
            ttft = distribution(s.ttft_s * 1000 for s in ok if s.ttft_s is not None)
            token = distribution(g * 1000 for s in ok for g in s.token_gaps)
            update = distribution(g * 1000 for s in ok for g in s.update_gaps)
            total = distribution(s.total_s * 1000 for s in ok if s.total_s is not None)
            reads = sum(s.reads for s in ok) / len(ok) if ok else None
            events = sum(s.events for s in ok) / len(ok) if ok else None
            cpu = tally.cpu_s * 1000 / n if n else None
            foreign = tally.foreign_s / tally.elapsed_s * 100 if tally.elapsed_s else None
            lines.append(
                f"| {case} | {name} | {n} | {fmt(ttft.p50)} | {fmt(ttft.p99)} "
                f"| {fmt(token.p50, 2)} | {fmt(token.p99, 2)} "
                f"| {fmt(update.p50, 2)} | {fmt(update.p99, 2)} | {fmt(reads)} | {fmt(events)} "
                f"| {fmt(total.p50)} | {fmt(cpu, 2)} | {n - len(ok)} "
                f"| {fmt(foreign, 0)} |"
            )
            rows.append(
                {
                    "case": case,
                    "coalescing": name,
                    "requests": n,
                    "errors": n - len(ok),
                    "ttft_ms": ttft.to_dict(),
                    "token_gap_ms": token.to_dict(),
                    "update_gap_ms": update.to_dict(),
                    "total_ms": total.to_dict(),
                    "reads_per_request": reads,
                    "events_per_request": events,
                    "cpu_ms_per_request": cpu,
                    "foreign_cpu_share": foreign,
                }
            )
    return "\n".join(lines), rows


def write_config(path: Path, sim_port: int, gw_port: int, window_ms: float) -> None:
    config: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": gw_port},
        "logging": {"format": "json", "level": "warning"},
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{sim_port}/v1",
                "api_key": API_KEY,
                "max_connections": 512,
            }
        },
        "deployments": {name: {"provider": "sim", "model": name} for name in UPSTREAMS},
        "routing": {"allow_direct_deployments": True},
        "sim": {
            "seed": 1,
            "servers": {"sim": {"kind": "openai", "port": sim_port, "models": UPSTREAMS}},
        },
    }
    if window_ms > 0:
        config["stream"] = {"coalesce_ms": window_ms}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.coalesce", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N: a smoke run")
    parser.add_argument("--window-ms", type=float, default=2.0, help="the window when on")
    parser.add_argument("--cases", help="comma-separated subset of case names to run")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    return parser.parse_args(argv)


async def bench(
    cases: Sequence[Case], gateways: dict[str, tuple[str, int]], sim_pid: int
) -> dict[str, Any]:
    results: dict[str, dict[str, Tally]] = {}
    for case in cases:
        print(f"case {case.name}: {case.rounds} rounds x {case.requests} requests", file=sys.stderr)
        results[case.name] = await run_case(case, gateways, sim_pid)
    markdown, rows = table(results)
    return {"markdown": markdown, "rows": rows, "cases": [asdict(c) for c in cases]}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases: tuple[Case, ...] = QUICK if args.quick else FULL
    if args.cases:
        wanted = {c.strip() for c in args.cases.split(",")}
        cases = tuple(c for c in cases if c.name in wanted)
    sim_port, off_port, on_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="bench-coalesce-") as tmp, Children() as children:
        directory = Path(tmp)
        off_config, on_config = directory / "off.yaml", directory / "on.yaml"
        write_config(off_config, sim_port, off_port, 0.0)
        write_config(on_config, sim_port, on_port, args.window_ms)
        sim = children.gateway("sim", "sim", off_config, directory / "sim.log")
        off = children.gateway("gateway-off", "serve", off_config, directory / "off.log")
        on = children.gateway("gateway-on", "serve", on_config, directory / "on.log")
        sim.wait_http(f"http://127.0.0.1:{sim_port}/v1/models")
        off.wait_http(f"http://127.0.0.1:{off_port}/healthz")
        on.wait_http(f"http://127.0.0.1:{on_port}/healthz")
        gateways = {
            "off": (f"http://127.0.0.1:{off_port}/v1/chat/completions", off.pid),
            f"{args.window_ms:g} ms": (f"http://127.0.0.1:{on_port}/v1/chat/completions", on.pid),
        }
        started = time.monotonic()
        out = uvloop.run(bench(cases, gateways, sim.pid))
        took = time.monotonic() - started
    env = (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}; client, simulator and both gateways "
        f"share them; {took:.0f} s"
    )
    print(out["markdown"])
    print(
        f"\n{env}. CPU = utime+stime of the gateway process per request of its rounds; other "
        "processes = CPU the rest of the machine used meanwhile (above ~10% the numbers are "
        "disturbed: rerun on a quiet machine)."
    )
    if args.json:
        out["environment"] = env
        out["window_ms"] = args.window_ms
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_bytes(to_json_bytes(out) + b"\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
