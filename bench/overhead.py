"""What does the gateway add? The same load, direct to a simulator and through the gateway.

    python -m bench.overhead [--quick] [--json FILE] [--bare] [--compare URL [--compare-pid PID]]
        [--cases NAMES] [--rounds N]

Starts two processes from one generated config (in a temp dir, free ports):
`python -m gateway sim --config F` (one OpenAI-kind server) and
`python -m gateway serve --config F`. This process is the client
(gateway.loadtest, uvloop). For each case it sends identical rounds of
streaming requests to the simulator directly and through the gateway,
alternating the order round by round so drift hits both alike, and reads
the gateway's utime+stime from /proc before and after each of its rounds.

Cases: fixed TTFT 100 ms, ITL 5 ms, 50 tokens at concurrency 1, 50, 200;
then a throughput case (TTFT 0, ITL 0, 200 tokens, concurrency 50).

"Added TTFT" is the gateway's percentile minus the direct percentile (the
requests are not paired, so it is a difference of percentiles, not a
percentile of differences). All processes share this machine's cores: when
the simulator or the client saturates a core, both paths slow down and the
difference understates or overstates the gateway's own cost; the CPU
columns show where the time went.

--bare adds the floor as a third target in the same alternation: `bench.bare_proxy`
(bytes forwarded untouched, headers held until the first token), started here on a
free port in front of the same simulator, its CPU measured like the gateway's.

Each case's rounds (--rounds N for another count) alternate the targets; with a second
measured target (--bare, --compare-pid) the report ends with the gateway's CPU over that
target's and its TTFT p50 minus that target's, round by round (median and range): on a
shared machine the speed drifts from one round to the next by more than the targets
differ, and a round pair shares it.

--compare URL adds another OpenAI-compatible gateway (e.g. a LiteLLM proxy)
that you started against the same simulator: give --sim-port so its
upstream URL is known in advance (http://127.0.0.1:PORT/v1) and map the
model names bench-ttft100 and bench-fast to it; --compare-pid lets its CPU be
measured too. --compare-header 'Name: value' (repeatable) is sent on its requests
only, for gateways that route by header (Portkey: x-portkey-provider,
x-portkey-custom-host). bench/peers/ holds the peers' configs and commands.

--pin runs the proxies under test (the gateway, the bare proxy, --compare-pid) on one
CPU and this client and the simulator on the others (every thread, by
sched_setaffinity). Unpinned, the three busy processes share two cores and a proxy's
TTFT tail is mostly its wait for a core; pinned, it is the proxy's own queueing. The
targets alternate, so only one proxy is busy at a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
import yaml

from bench.procs import (
    Child,
    Children,
    cpu_seconds,
    free_port,
    machine_busy_seconds,
    pin,
    split_cpus,
)
from gateway.loadtest import LoadResult, RequestSample, make_session, run_load, summarize
from gateway.loadtest.cli import header_arg
from gateway.loadtest.report import to_json_bytes

ROOT = Path(__file__).resolve().parent.parent
MODEL_TTFT = "bench-ttft100"
MODEL_FAST = "bench-fast"
API_KEY = "bench-key"
PROMPT = "Say something about latency."


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    model: str
    concurrency: int
    requests: int  # per round and target
    rounds: int


FULL = (
    Case("c=1", MODEL_TTFT, 1, 40, 3),
    Case("c=50", MODEL_TTFT, 50, 1000, 3),
    Case("c=200", MODEL_TTFT, 200, 2000, 3),
    Case("throughput c=50", MODEL_FAST, 50, 600, 3),
)
QUICK = (
    Case("c=1", MODEL_TTFT, 1, 5, 2),
    Case("c=50", MODEL_TTFT, 50, 100, 2),
    Case("c=200", MODEL_TTFT, 200, 200, 2),
    Case("throughput c=50", MODEL_FAST, 50, 100, 2),
)


@dataclass(slots=True)
class Target:
    name: str
    base_url: str
    pid: int | None  # process whose CPU is charged to this target's rounds
    api_key: str = API_KEY
    headers: tuple[tuple[str, str], ...] = ()  # sent on this target's requests only


@dataclass(slots=True)
class Tally:
    """Every round of one case against one target."""

    samples: list[RequestSample] = field(default_factory=list)
    elapsed_s: float = 0.0
    cpu_s: float | None = None  # of the target's own process (gateway / compare)
    sim_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    foreign_cpu_s: float = 0.0  # used by other processes of the machine meanwhile
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, result: LoadResult, cpu: float | None, sim: float, client: float, foreign: float
    ) -> None:
        self.samples.extend(result.samples)
        self.elapsed_s += result.summary.elapsed_s
        if cpu is not None:
            self.cpu_s = (self.cpu_s or 0.0) + cpu
        self.sim_cpu_s += sim
        self.client_cpu_s += client
        self.foreign_cpu_s += foreign
        self.rounds.append(
            {
                **result.summary.to_dict(),
                "cpu_s": cpu,
                "sim_cpu_s": sim,
                "client_cpu_s": client,
                "foreign_cpu_s": foreign,
            }
        )


def write_config(directory: Path, sim_port: int, gw_port: int) -> Path:
    config = {
        "listen": {"host": "127.0.0.1", "port": gw_port},
        "logging": {"format": "json", "level": "info"},
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{sim_port}/v1",
                "api_key": API_KEY,
                # the default (100) would queue requests inside the gateway at c=200
                "max_connections": 512,
            }
        },
        "deployments": {
            MODEL_TTFT: {"provider": "sim", "model": MODEL_TTFT},
            MODEL_FAST: {"provider": "sim", "model": MODEL_FAST},
        },
        "routing": {"allow_direct_deployments": True},  # the load names the deployment
        "sim": {
            "seed": 1,
            "servers": {
                "sim": {
                    "kind": "openai",
                    "port": sim_port,
                    "models": {
                        MODEL_TTFT: {"ttft_ms": 100, "itl_ms": 5, "tokens": 50},
                        MODEL_FAST: {"ttft_ms": 0, "itl_ms": 0, "tokens": 200},
                    },
                }
            },
        },
    }
    path = directory / "bench-overhead.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _cpu(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return cpu_seconds(pid)
    except OSError:
        return None


async def _round(
    case: Case,
    target: Target,
    session: aiohttp.ClientSession,
    sim_pid: int,
    requests: int,
    own_pids: Sequence[int],
) -> tuple[LoadResult, float | None, float, float, float]:
    """One measured round: the result; CPU s of the target's process, the simulator and this
    client; and CPU s that *other* processes of the machine used meanwhile."""
    busy0, own0 = machine_busy_seconds(), [_cpu(pid) or 0.0 for pid in own_pids]
    cpu0, sim0, client0 = _cpu(target.pid), cpu_seconds(sim_pid), time.process_time()
    result = await run_load(
        target.base_url,
        case.model,
        api_key=target.api_key,
        headers=dict(target.headers),
        concurrency=case.concurrency,
        requests=requests,
        prompt=PROMPT,
        timeout_s=60.0,
        session=session,
        progress=False,
    )
    cpu1, sim1, client1 = _cpu(target.pid), cpu_seconds(sim_pid), time.process_time()
    own = sum((_cpu(pid) or 0.0) - before for pid, before in zip(own_pids, own0, strict=True))
    foreign = machine_busy_seconds() - busy0 - own - (client1 - client0)
    cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return result, cpu, sim1 - sim0, client1 - client0, max(foreign, 0.0)


async def run_case(case: Case, targets: list[Target], sim_pid: int) -> dict[str, Tally]:
    own = [sim_pid, *(t.pid for t in targets if t.pid is not None)]
    tallies = {t.name: Tally() for t in targets}
    sessions = {t.name: make_session(case.concurrency) for t in targets}
    try:
        for target in targets:  # warm-up: open the connections, not measured
            await _round(case, target, sessions[target.name], sim_pid, case.concurrency, own)
        for r in range(case.rounds):
            order = targets if r % 2 == 0 else list(reversed(targets))
            for target in order:
                result, cpu, sim, client, foreign = await _round(
                    case, target, sessions[target.name], sim_pid, case.requests, own
                )
                tallies[target.name].add(result, cpu, sim, client, foreign)
                s = result.summary
                print(
                    f"  {case.name:<16} round {r + 1} {target.name:<8} "
                    f"TTFT p50 {s.ttft_ms.p50 or 0:7.1f} ms  {s.requests_per_s:7.1f} req/s"
                    + (f"  errors {s.errors}" if s.errors else ""),
                    file=sys.stderr,
                )
    finally:
        for session in sessions.values():
            await session.close()
    return tallies


def fmt(value: float | None, digits: int = 1) -> str:
    """A table cell: the number, or "-" when there is none."""
    return "-" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def table(results: dict[str, dict[str, Tally]], baseline: str = "direct") -> tuple[str, list[Any]]:
    header = (
        "| case | path | requests | TTFT p50 ms | TTFT p99 ms | added TTFT p50 ms "
        "| added TTFT p99 ms | req/s | chunks/s | chars/s | CPU ms/req (gw) | sim CPU ms/req "
        "| errors | other processes, % of a core |"
    )
    lines = [header, "|" + "---|" * 14]
    rows: list[Any] = []
    for case_name, tallies in results.items():
        base = summarize(tallies[baseline].samples, tallies[baseline].elapsed_s)
        for name, tally in tallies.items():
            s = summarize(tally.samples, tally.elapsed_s)
            n = len(tally.samples)
            added50 = added99 = None
            if name != baseline and s.ttft_ms.p50 is not None and base.ttft_ms.p50 is not None:
                added50 = s.ttft_ms.p50 - base.ttft_ms.p50
                added99 = (s.ttft_ms.p99 or 0.0) - (base.ttft_ms.p99 or 0.0)
            cpu = tally.cpu_s * 1000 / n if tally.cpu_s is not None and n else None
            sim_cpu = tally.sim_cpu_s * 1000 / n if n else None
            errors = ", ".join(f"{k}: {v}" for k, v in s.errors.items()) or "0"
            foreign = tally.foreign_cpu_s / tally.elapsed_s * 100 if tally.elapsed_s else None
            lines.append(
                f"| {case_name} | {name} | {n} | {fmt(s.ttft_ms.p50)} | {fmt(s.ttft_ms.p99)} "
                f"| {_signed(added50)} | {_signed(added99)} | {fmt(s.requests_per_s)} "
                f"| {fmt(s.chunks_per_s, 0)} | {fmt(s.chars_per_s, 0)} | {fmt(cpu, 2)} "
                f"| {fmt(sim_cpu, 2)} | {errors} | {fmt(foreign, 0)} |"
            )
            rows.append(
                {
                    "case": case_name,
                    "path": name,
                    "summary": s.to_dict(),
                    "added_ttft_p50_ms": added50,
                    "added_ttft_p99_ms": added99,
                    "cpu_ms_per_request": cpu,
                    "sim_cpu_ms_per_request": sim_cpu,
                    "client_cpu_ms_per_request": tally.client_cpu_s * 1000 / n if n else None,
                    "foreign_cpu_share": foreign,
                    "rounds": tally.rounds,
                }
            )
    return "\n".join(lines), rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N: a smoke run")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--bare", action="store_true", help="add bench.bare_proxy as a target")
    parser.add_argument("--compare", metavar="URL", help="another gateway's /v1 base URL")
    parser.add_argument("--compare-name", default="compare", help="its label in the table")
    parser.add_argument("--compare-pid", type=int, help="its process id, to measure its CPU")
    parser.add_argument("--compare-key", default=API_KEY, help="its API key")
    parser.add_argument(
        "--compare-header",
        type=header_arg,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header for it only (repeatable)",
    )
    parser.add_argument("--sim-port", type=int, help="fixed simulator port (default: a free one)")
    parser.add_argument("--cases", help="comma-separated subset of case names to run")
    parser.add_argument(
        "--rounds", type=int, help="rounds per case instead of each case's own (3 by default)"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run the proxies (gateway, bare proxy, --compare-pid) on one CPU and the client "
        "and simulator on the others",
    )
    return parser.parse_args(argv)


async def bench(args: argparse.Namespace, targets: list[Target], sim_pid: int) -> dict[str, Any]:
    cases: tuple[Case, ...] = QUICK if args.quick else FULL
    if args.cases:
        wanted = {c.strip() for c in args.cases.split(",")}
        cases = tuple(c for c in cases if c.name in wanted)
    if args.rounds:
        cases = tuple(replace(c, rounds=args.rounds) for c in cases)
    results: dict[str, dict[str, Tally]] = {}
    for case in cases:
        print(f"case {case.name}: {case.rounds} rounds x {case.requests} requests", file=sys.stderr)
        results[case.name] = await run_case(case, targets, sim_pid)
    markdown, rows = table(results)
    ratios = round_ratios(results)
    if ratios:
        markdown += "\n\n" + "\n".join(ratios)
    return {"markdown": markdown, "rows": rows, "cases": [asdict(c) for c in cases]}


def round_ratios(results: dict[str, dict[str, Tally]], own: str = "gateway") -> list[str]:
    """The gateway's CPU over each other measured target's, round by round (the two ran
    back to back, so the machine's drift between rounds, often larger than the difference
    between the targets on a shared machine, cancels out): median, and the range."""
    lines = []
    for case_name, tallies in results.items():
        mine = [r["cpu_s"] for r in tallies[own].rounds] if own in tallies else []
        for name, tally in tallies.items():
            theirs = [r["cpu_s"] for r in tally.rounds]
            if name == own or not mine or None in mine or not theirs or None in theirs:
                continue
            each = sorted(a / b for a, b in zip(mine, theirs, strict=True) if b)
            if each:
                lines.append(
                    f"{case_name}: {own} CPU / {name} CPU per round: median "
                    f"{statistics.median(each):.2f}x over {len(each)} rounds "
                    f"({each[0]:.2f}x-{each[-1]:.2f}x)"
                )
            gaps = sorted(
                a["ttft_ms"]["p50"] - b["ttft_ms"]["p50"]
                for a, b in zip(tallies[own].rounds, tally.rounds, strict=True)
                if a["ttft_ms"]["p50"] is not None and b["ttft_ms"]["p50"] is not None
            )
            if gaps:
                lines.append(
                    f"{case_name}: {own} TTFT p50 - {name} TTFT p50 per round: median "
                    f"{statistics.median(gaps):+.2f} ms ({gaps[0]:+.2f} to {gaps[-1]:+.2f})"
                )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("interrupted; simulator and gateway stopped", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    args = parse_args(argv)
    sim_port = args.sim_port or free_port()
    gw_port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp, Children() as children:
        directory = Path(tmp)
        config = write_config(directory, sim_port, gw_port)
        sim = children.gateway("sim", "sim", config, directory / "sim.log")
        gw = children.gateway("gateway", "serve", config, directory / "gateway.log")
        bare: Child | None = None
        bare_port = free_port()
        if args.bare:
            bare = children.start(
                "bare-proxy",
                [
                    "-m",
                    "bench.bare_proxy",
                    "--port",
                    str(bare_port),
                    "--upstream",
                    f"http://127.0.0.1:{sim_port}/v1",
                ],
                directory / "bare.log",
                ROOT,
            )
        sim.wait_http(f"http://127.0.0.1:{sim_port}/v1/models")
        gw.wait_http(f"http://127.0.0.1:{gw_port}/healthz")
        if bare is not None:
            bare.wait_port(bare_port)
        print(
            f"simulator pid {sim.pid} on :{sim_port}, gateway pid {gw.pid} on :{gw_port}",
            file=sys.stderr,
        )
        targets = [
            Target("direct", f"http://127.0.0.1:{sim_port}/v1", None),
            Target("gateway", f"http://127.0.0.1:{gw_port}/v1", gw.pid),
        ]
        if bare is not None:
            targets.append(Target("bare-proxy", f"http://127.0.0.1:{bare_port}/v1", bare.pid))
        if args.compare:
            targets.append(
                Target(
                    args.compare_name,
                    args.compare,
                    args.compare_pid,
                    args.compare_key,
                    tuple(args.compare_header),
                )
            )
        if args.pin:
            proxy_cpus, load_cpus = split_cpus()
            for target in targets:
                if target.pid is not None:
                    pin(target.pid, proxy_cpus)
            pin(sim.pid, load_cpus)
            pin(os.getpid(), load_cpus)
        started = time.monotonic()
        out = uvloop.run(bench(args, targets, sim.pid))
        took = time.monotonic() - started
    env = (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}; "
        + (
            "the proxies pinned to one CPU, client and simulator to the others"
            if args.pin
            else "client, simulator and gateway share them"
        )
        + f"; {took:.0f} s"
    )
    print(out["markdown"])
    print(
        f"\n{env}. CPU = utime+stime of the process per request of its rounds; other "
        "processes = CPU the rest of the machine used meanwhile (above ~10% the numbers are "
        "disturbed: rerun on a quiet machine)."
    )
    if args.json:
        out["environment"] = env
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_bytes(to_json_bytes(out) + b"\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
