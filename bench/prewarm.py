"""First-token time of a cold vs a pre-warmed first request vs steady state.

    python -m bench.prewarm [--reps N] [--handshake-ms H] [--ttft-ms T] [--quick]

One simulated OpenAI-kind provider that charges `handshake_ms` (default 100 ms,
a TCP + TLS handshake at moderate distance; latency-data.md gives 45-550 ms)
on every new connection and answers with a fixed TTFT (default 50 ms), so the
only thing that differs between requests is whether the gateway had an idle
upstream connection ready. In-process gateway and simulator, real sockets.

Each repetition starts a fresh gateway (so the first request really is the
first) in one of two modes:

* cold: `latency.prewarm.enabled: false`;
* pre-warmed: `prewarm.enabled: true, connections: 2`; the first request is sent
  after the pre-warmer's first round (`PreWarmer.wait_rounds(1)`).

and measures, client side (gateway.loadtest, first content token):

1. the first request after start;
2. steady state: the median of the next `--steady` requests (sequential, pooled
   connections);
3. the first request after the gateway sat idle longer than the provider's
   keep-alive (`keepalive_s` 2 s, idle `--idle-s` 3 s): without pre-warming the
   pooled connection has been dropped; the pre-warmer refreshes it every
   keepalive / 2.

The client's own connection to the gateway is opened beforehand (GET /healthz),
so only the upstream side differs. The simulator's log says whether each
upstream request came on a new connection and what handshake it paid.
Results: a markdown table on stdout, bench/results/prewarm.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from gateway.config import parse_config
from gateway.loadtest import make_session, run_load
from gateway.loadtest.report import to_json_bytes
from gateway.logs import configure_logging
from gateway.runtime import Gateway
from gateway.server.app import start_server
from gateway.sim.config import parse_sim_config
from gateway.sim.log import SimRecord
from gateway.sim.server import SimCluster

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "m"
KEEPALIVE_S = 2.0
MODES = ("cold", "pre-warmed")


@dataclass(slots=True)
class Rep:
    mode: str
    first_ms: float
    first_new_connection: bool
    first_handshake_ms: float
    steady_ms: list[float] = field(default_factory=list)
    steady_new_connections: int = 0
    idle_ms: float | None = None
    idle_new_connection: bool | None = None
    idle_handshake_ms: float | None = None
    warm_targets: dict[str, int] = field(default_factory=dict)

    @property
    def steady_p50(self) -> float:
        return statistics.median(self.steady_ms)


def sim_data(handshake_ms: float, ttft_ms: float) -> dict[str, Any]:
    model = {"ttft_ms": ttft_ms, "itl_ms": 1.0, "tokens": 4}
    return {
        "seed": 1,
        "servers": {
            "sim": {"kind": "openai", "handshake_ms": handshake_ms, "models": {MODEL: model}}
        },
    }


def gateway_data(cluster: SimCluster, prewarm: bool) -> dict[str, Any]:
    return {
        "logging": {"level": "warning"},
        "latency": {"prewarm": {"enabled": prewarm, "connections": 2}},
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": cluster.base_url("sim"),
                "api_key": "sim-key",
                "keepalive_s": KEEPALIVE_S,
            }
        },
        "deployments": {MODEL: {"provider": "sim", "model": MODEL}},
        "routing": {"allow_direct_deployments": True},  # the load names the deployment
    }


async def ttft_ms(http: aiohttp.ClientSession, url: str) -> float:
    result = await run_load(
        url + "/v1", MODEL, concurrency=1, requests=1, session=http, progress=False
    )
    sample = result.samples[0]
    if sample.error is not None or sample.ttft_s is None:
        raise RuntimeError(f"request failed: {sample.error}")
    return sample.ttft_s * 1000


def chat_records(cluster: SimCluster) -> list[SimRecord]:
    return [r for r in cluster.log.records if r.model is not None]


async def one_rep(
    cluster: SimCluster, mode: str, steady: int, idle_s: float, with_idle: bool
) -> Rep:
    cluster.reset()
    gateway = Gateway(parse_config(gateway_data(cluster, mode == "pre-warmed"), env={}))
    runner, url = await start_server(gateway, "127.0.0.1", 0)
    try:
        async with make_session(1) as http:
            async with http.get(url + "/healthz") as resp:  # the client side is warm
                await resp.read()
            targets: dict[str, int] = {}
            if gateway.prewarmer is not None:
                await gateway.prewarmer.wait_rounds(1)
                targets = dict(gateway.prewarmer.last_targets)
            first = await ttft_ms(http, url)
            record = chat_records(cluster)[0]
            rep = Rep(mode, first, record.new_connection, record.handshake_ms, warm_targets=targets)
            for _ in range(steady):
                rep.steady_ms.append(await ttft_ms(http, url))
            rep.steady_new_connections = sum(r.new_connection for r in chat_records(cluster)[1:])
            if with_idle:
                await asyncio.sleep(idle_s)
                async with http.get(url + "/healthz") as resp:  # only the client side again
                    await resp.read()
                rep.idle_ms = await ttft_ms(http, url)
                last = chat_records(cluster)[-1]
                rep.idle_new_connection, rep.idle_handshake_ms = (
                    last.new_connection,
                    last.handshake_ms,
                )
            return rep
    finally:
        await runner.cleanup()


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summarize(reps: list[Rep]) -> tuple[str, dict[str, Any]]:
    lines = [
        "| mode | request | reps | TTFT p50 ms | mean ms | min ms | max ms "
        "| vs steady p50 (per rep, median) | new upstream connection | handshake paid ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, Any] = {}
    for mode in MODES:
        mine = [r for r in reps if r.mode == mode]
        if not mine:
            continue
        steady_all = [v for r in mine for v in r.steady_ms]
        cases: list[tuple[str, list[float], list[float], list[bool], list[float]]] = [
            (
                "first after start",
                [r.first_ms for r in mine],
                [r.first_ms - r.steady_p50 for r in mine],
                [r.first_new_connection for r in mine],
                [r.first_handshake_ms for r in mine],
            )
        ]
        idle = [r for r in mine if r.idle_ms is not None]
        if idle:
            cases.append(
                (
                    "first after idle > keep-alive",
                    [r.idle_ms for r in idle if r.idle_ms is not None],
                    [r.idle_ms - r.steady_p50 for r in idle if r.idle_ms is not None],
                    [bool(r.idle_new_connection) for r in idle],
                    [r.idle_handshake_ms or 0.0 for r in idle],
                )
            )
        summary[mode] = {}
        for name, values, deltas, new_conn, paid in cases:
            delta = statistics.median(deltas)
            lines.append(
                f"| {mode} | {name} | {len(values)} | {_f(statistics.median(values))} "
                f"| {_f(statistics.fmean(values))} | {_f(min(values))} | {_f(max(values))} "
                f"| {delta:+.1f} | {sum(new_conn)}/{len(new_conn)} "
                f"| {_f(statistics.fmean(paid), 0)} |"
            )
            summary[mode][name] = {
                "p50_ms": statistics.median(values),
                "mean_ms": statistics.fmean(values),
                "min_ms": min(values),
                "max_ms": max(values),
                "delta_vs_steady_ms": delta,
                "deltas_ms": deltas,
                "new_connections": sum(new_conn),
                "handshake_paid_ms": paid,
                "values_ms": values,
            }
        new_steady = sum(r.steady_new_connections for r in mine)
        lines.append(
            f"| {mode} | steady state | {len(steady_all)} | {_f(statistics.median(steady_all))} "
            f"| {_f(statistics.fmean(steady_all))} | {_f(min(steady_all))} "
            f"| {_f(max(steady_all))} | - | {new_steady}/{len(steady_all)} | 0 |"
        )
        summary[mode]["steady state"] = {
            "p50_ms": statistics.median(steady_all),
            "mean_ms": statistics.fmean(steady_all),
            "min_ms": min(steady_all),
            "max_ms": max(steady_all),
            "new_connections": new_steady,
        }
    return "\n".join(lines), summary


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging("json", "warning")
    sim_config, problems = parse_sim_config(sim_data(args.handshake_ms, args.ttft_ms))
    if sim_config is None:
        raise SystemExit("bad sim config:\n" + "\n".join(problems))
    started = time.monotonic()
    reps: list[Rep] = []
    async with SimCluster(sim_config) as cluster:
        for i in range(args.reps):
            for mode in MODES if i % 2 == 0 else reversed(MODES):  # alternate: drift hits both
                rep = await one_rep(cluster, mode, args.steady, args.idle_s, not args.no_idle)
                reps.append(rep)
                print(
                    f"rep {i + 1}/{args.reps} {mode}: first {rep.first_ms:.1f} ms, "
                    f"steady {rep.steady_p50:.1f} ms, after idle {_f(rep.idle_ms)} ms",
                    file=sys.stderr,
                )
    table, summary = summarize(reps)
    return {
        "table": table,
        "summary": summary,
        "reps": [asdict(r) for r in reps],
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "seconds": time.monotonic() - started,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.prewarm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reps", type=int, default=10, help="repetitions per mode")
    parser.add_argument("--handshake-ms", type=float, default=100.0)
    parser.add_argument("--ttft-ms", type=float, default=50.0, help="the simulator's fixed TTFT")
    parser.add_argument("--steady", type=int, default=10, help="steady-state requests per rep")
    parser.add_argument("--idle-s", type=float, default=3.0, help="idle time (> keep-alive 2 s)")
    parser.add_argument("--no-idle", action="store_true", help="skip the after-idle request")
    parser.add_argument("--quick", action="store_true", help="3 repetitions")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.reps = 3
    if args.reps < 1 or args.steady < 1:
        parser.error("--reps and --steady must be >= 1")
    if not args.no_idle and args.idle_s <= KEEPALIVE_S:
        parser.error(f"--idle-s must exceed the keep-alive ({KEEPALIVE_S:g} s)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out = uvloop.run(bench(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    warm = out["summary"].get("pre-warmed", {})
    first = warm.get("first after start", {}).get("delta_vs_steady_ms")
    idle = warm.get("first after idle > keep-alive", {}).get("delta_vs_steady_ms")
    text = "\n".join(
        [
            f"Simulator: handshake {args.handshake_ms:g} ms per new connection, fixed TTFT "
            f"{args.ttft_ms:g} ms; provider keep-alive {KEEPALIVE_S:g} s, pre-warm 2 "
            f"connections refreshed every {max(1.0, KEEPALIVE_S / 2):g} s; {args.reps} "
            f"fresh gateways per mode, {args.steady} steady-state requests each"
            + ("" if args.no_idle else f", then {args.idle_s:g} s idle and one more request")
            + ".",
            "",
            out["table"],
            "",
            f"Pre-warmed first request vs steady state (median over reps of first - that "
            f"gateway's steady p50): {_f(first)} ms after start"
            + ("" if idle is None else f", {_f(idle)} ms after idle")
            + " (aim: within 5 ms).",
            f"{out['seconds']:.0f} s.",
        ]
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prewarm.md").write_text(text + "\n")
    (args.out / "prewarm.json").write_bytes(to_json_bytes(out) + b"\n")
    print(f"\nwrote {args.out / 'prewarm.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
