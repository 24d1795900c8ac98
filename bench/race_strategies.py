"""Race vs hedge vs fallback on heavy-tailed TTFT: what each buys and what it costs.

    python -m bench.race_strategies [--requests N] [--rate R] [--quick]
        [--handshake-ms MS] [--upstream http1|http2]

Three seeded simulated deployments shaped on published TTFT figures
(latency-data.md; lognormal body + stragglers fitted by bench.shapes):

    A  p50 540 ms, p95 840 ms, p99 4.5 s   (GPT-4o-mini-like: long straggler tail)
    B  p50 480 ms, p95 780 ms, p99 1.3 s   (Gemini-Flash-like: the best single one)
    C  p50 520 ms, p95 820 ms, p99 2.0 s   (a third, similar one)

One gateway config holds every route (max_extra_load 5, so the extra-load
budget never turns racing off): single B, fallback [B, A, C], hedge [B, C, A]
with hedge_delay = B's p90 (~690 ms), race k=2 and race k=3 over [B, C, A].
Each strategy gets the same open-loop workload (N requests evenly spaced at R
per second: ~20 in flight) and the simulator is reset before each, so every
strategy faces the same TTFT draws (request n of a deployment always draws
the same value).

Everything runs in this one process (SimCluster + Gateway + start_server, as
tests/stack.py does): latencies here are hundreds of ms, CPU load is light
(R x a few tokens), and in-process we read the simulator's log (every upstream
request's planned TTFT and tokens sent) and the gateway's RaceRecords (which
attempts each request started, when) directly, and join them exactly. The
price: client, gateway and simulator share one event loop and one heap, and a
full garbage collection over all of it stalls everything for 30-80 ms; so
full collections run between strategies, not during them (young-generation
collections still run). The gateway's own GC pauses are a separate-process
matter (see bench.overhead).

`--handshake-ms` has each new upstream connection's first request wait that long first,
counted from the connection's accept, as a TLS handshake's round trips to a distant
provider would; over HTTP/1.1 a race's cut loser takes its connection with it, so a later
request pays it again, unless the gateway replaced it in the background meanwhile
(`replace_cut_connections`, on by default over https: here on with a handshake, as it
stands for TLS; `--replace-cut off` measures without, into `..._noreplace.*`). `--tls`
puts the simulators on TLS (a throwaway certificate the gateway trusts), where the
handshake is the TLS handshake's own, held `--handshake-ms` (`sim/tls_delay.py`): a
connection then goes idle in the pool only once it is done, as with a real provider
(`..._tls.*`). `--upstream
http2` has the simulators and the providers speak HTTP/2 (a loser is reset, its
connection kept). Either writes `race_strategies_<upstream>_hs<MS>.*` instead.

The oracle: for each request, the smallest planned TTFT among its candidates.
Draws are independent, so it is observable only where every candidate was
asked: we take it from the race k=3 run, grouping the three upstream requests
of each client request by their per-deployment index n (same n = same client
request, since the three start together and requests are spaced apart; the
grouping is checked by arrival time). It is the TTFT a clairvoyant router
picking the fastest deployment per request would get, without gateway costs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from bench.procs import machine_busy_seconds, make_certificate
from bench.race_report import (
    GROUP_SPREAD_MS,
    RaceCollector,
    earliest_possible,
    hedge_sweep,
    join,
    profiles_table,
    q,
    report,
    shapes_table,
    triple,
)
from bench.race_setup import (
    TARGETS,
    TOKENS,
    Strategy,
    gateway_data,
    route_name,
    sim_data,
    strategies,
)
from bench.shapes import Shape, fit, survival_quantile
from gateway.config import parse_config
from gateway.latency.clock import hour_of
from gateway.loadtest import LoadResult, plot_ttft_cdf, run_load
from gateway.loadtest.report import to_json_bytes
from gateway.logs import configure_logging
from gateway.runtime import Gateway
from gateway.server.app import start_server
from gateway.sim.config import parse_sim_config
from gateway.sim.log import SimRecord
from gateway.sim.server import SimCluster

RESULTS = Path(__file__).resolve().parent / "results"


async def metric_sum(http: aiohttp.ClientSession, url: str, name: str) -> float:
    """Sum of every sample of one Prometheus metric (all label sets)."""
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def settle(cluster: SimCluster, timeout_s: float = 15.0) -> list[SimRecord]:
    """Wait until no upstream request is still pending (cancelled losers included)."""
    try:
        await cluster.log.wait_for(lambda rs: all(r.end is not None for r in rs), timeout_s)
    except TimeoutError:
        print("warning: some upstream requests never ended", file=sys.stderr)
    return list(cluster.log.records)


def profile_snapshot(gateway: Gateway) -> dict[str, dict[str, Any]]:
    """What the gateway's latency profiles predict now: p50 and p90 TTFT per deployment."""
    region = gateway.config.latency.default_region
    hour = hour_of(time.time())
    out: dict[str, dict[str, Any]] = {}
    for name, dep in gateway.config.deployments.items():
        prior = (dep.prior.ttft_p50_ms, dep.prior.ttft_p95_ms)
        p50 = gateway.state.profiles.ttft_quantile(name, region, hour, 0.5, prior)
        p90 = gateway.state.profiles.ttft_quantile(name, region, hour, 0.9, prior)
        out[name] = {
            "p50_ms": p50.value_s * 1000,
            "p90_ms": p90.value_s * 1000,
            "level": p90.level,
            "samples": p90.samples,
        }
    return out


async def run_strategy(
    strategy: Strategy,
    shapes: dict[str, Shape],
    gateway: Gateway,
    cluster: SimCluster,
    races: RaceCollector,
    url: str,
    http: aiohttp.ClientSession,
    requests: int,
    rate: float,
) -> dict[str, Any]:
    cluster.reset()
    races.records.clear()
    # Client, simulator and gateway share this process's heap: a full (gen-2) collection
    # over all of it stalls the one event loop for 30-80 ms and shows up as "overhead".
    # Collect between runs instead; young-generation collections still run as usual.
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], 1_000_000)
    busy0, own0, wall0 = machine_busy_seconds(), time.process_time(), time.monotonic()
    try:
        row = await _run_strategy(
            strategy, shapes, gateway, cluster, races, url, http, rate, requests
        )
        foreign = machine_busy_seconds() - busy0 - (time.process_time() - own0)
        row["foreign_cpu_share"] = max(foreign, 0.0) / (time.monotonic() - wall0)
        return row
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


async def _run_strategy(
    strategy: Strategy,
    shapes: dict[str, Shape],
    gateway: Gateway,
    cluster: SimCluster,
    races: RaceCollector,
    url: str,
    http: aiohttp.ClientSession,
    rate: float,
    requests: int,
) -> dict[str, Any]:
    prefix = route_name(strategy) + "-"
    wasted0 = await metric_sum(http, url, "gateway_wasted_tokens_total")
    limited0 = await metric_sum(http, url, "gateway_extra_load_budget_exhausted_total")
    result: LoadResult = await run_load(
        url + "/v1",
        route_name(strategy),
        api_key="bench",
        rate=rate,
        requests=requests,
        timeout_s=30.0,
        request_id_prefix=prefix,
        progress=None,
    )
    records = await settle(cluster)
    for _ in range(100):  # the last handlers report their race just after the response
        if len(races.records) >= requests:
            break
        await asyncio.sleep(0.05)
    wasted = await metric_sum(http, url, "gateway_wasted_tokens_total") - wasted0
    limited = await metric_sum(http, url, "gateway_extra_load_budget_exhausted_total") - limited0
    chat = [r for r in records if r.model is not None]
    cancelled = [r for r in chat if r.outcome == "client_disconnect"]
    race_records = dict(races.records)
    joined = join(prefix, requests, 1.0 / rate, race_records, chat)
    started = Counter(
        "+".join(sorted(a.deployment for a in r.attempts)) for r in race_records.values()
    )
    second_starts = [
        r.attempts[1].start_offset_s * 1000 for r in race_records.values() if len(r.attempts) > 1
    ]
    ttft: list[float] = []
    zero_overhead: list[float] = []
    overhead: list[float] = []
    best_planned: list[float] = []  # per request: min planned TTFT over its attempts
    wins: dict[str, int] = {}
    for sample in result.samples:
        if sample.deployment:
            wins[sample.deployment] = wins.get(sample.deployment, 0) + 1
        if sample.error is not None or sample.ttft_s is None:
            continue
        ttft.append(sample.ttft_s * 1000)
        attempts = joined.attempts.get(sample.index, [])
        earliest = earliest_possible(attempts)
        if earliest is not None:
            zero_overhead.append(earliest)
            overhead.append(sample.ttft_s * 1000 - earliest)
            best_planned.append(min(a.planned_ms for a in attempts if a.planned_ms is not None))
    ideal = strategy.ideal(shapes)
    n = len(result.samples)
    return {
        "key": strategy.key,
        "strategy": strategy.name,
        "route": {"name": route_name(strategy), **strategy.route},
        "started": dict(started.most_common()),
        "second_attempt_start_ms": triple(second_starts) if second_starts else None,
        "zero_overhead_ttft_ms": triple(zero_overhead),
        "profiles_after": profile_snapshot(gateway),
        "requests": n,
        "errors": result.summary.errors,
        "ttft_ms": triple(ttft),
        "ttft_p999_ms": q(ttft, 99.9),
        "ideal_ttft_ms": {f"p{p:g}": survival_quantile(ideal, p / 100) for p in (50, 95, 99)},
        "overhead_ms": triple(overhead),
        "join_check": {"multi_attempt": joined.checked, "consistent": joined.consistent},
        "upstream_requests": len(chat),
        "extra_upstream": len(chat) / n - 1 if n else None,
        "wasted_tokens_sim": sum(r.tokens_sent for r in cancelled),
        "wasted_tokens_gateway": wasted,
        "cancelled_upstream": len(cancelled),
        "budget_limited": limited,
        "wins": dict(sorted(wins.items())),
        "ttft_values_ms": ttft,
        "best_planned_ms": best_planned,
        "records": records,
    }


async def bench(
    requests: int,
    rate: float,
    handshake_ms: float = 0.0,
    http2: bool = False,
    replace_cut: bool | None = None,
    tls: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    configure_logging("json", "warning")
    shapes = {name: fit(p50, p95, p99, f) for name, (p50, p95, p99, f) in TARGETS.items()}
    hedge_delay_ms = round(shapes["B"].quantile(0.90))
    plan = strategies(hedge_delay_ms)
    sim_config, problems = parse_sim_config(sim_data(shapes, handshake_ms, http2, tls))
    if sim_config is None:
        raise SystemExit("bad sim config:\n" + "\n".join(problems))
    started = time.monotonic()
    races = RaceCollector()
    async with SimCluster(sim_config) as cluster, aiohttp.ClientSession() as http:
        data = gateway_data(cluster, plan, http2, replace_cut, tls[1] if tls else None)
        gateway = Gateway(parse_config(data, env={}))
        gateway.add_observer(races)
        runner, url = await start_server(gateway, "127.0.0.1", 0)
        try:
            # warm-up: open pooled connections to every simulator (not measured)
            await run_load(url + "/v1", route_name(plan[-1]), rate=40, requests=40, progress=False)
            rows = []
            for strategy in plan:
                print(f"{strategy.name}: {requests} requests at {rate:g}/s", file=sys.stderr)
                rows.append(
                    await run_strategy(
                        strategy, shapes, gateway, cluster, races, url, http, requests, rate
                    )
                )
        finally:
            await runner.cleanup()
    k3 = rows[-1]
    oracle = k3["best_planned_ms"]  # race k=3: every request asked A, B and C at once
    table, extra = report(rows, oracle)
    took = time.monotonic() - started
    return {
        "table": table,
        "shapes_table": shapes_table(shapes, TARGETS, k3["records"]),
        "hedge_sweep": hedge_sweep(shapes),
        "profiles_table": profiles_table(rows),
        "hedge_delay_ms": hedge_delay_ms,
        "oracle_values_ms": oracle,
        "rows": rows,
        "shapes": {name: shape.sim_keys() for name, shape in shapes.items()},
        "seconds": took,
        **extra,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.race_strategies", description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="per strategy")
    parser.add_argument("--rate", type=float, default=35.0, help="requests per second")
    parser.add_argument("--quick", action="store_true", help="200 requests: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument(
        "--handshake-ms", type=float, default=0.0, help="paid by each new connection (0)"
    )
    parser.add_argument("--upstream", choices=("http1", "http2"), default="http1")
    parser.add_argument(
        "--replace-cut",
        choices=("on", "off"),
        default=None,
        help="replace cut HTTP/1.1 connections (default: on with a handshake, else auto)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="the simulators on TLS, the handshake paid in it (writes ..._tls.*)",
    )
    args = parser.parse_args(argv)
    requests = 200 if args.quick else args.requests
    stem = "race_strategies"
    if args.handshake_ms or args.upstream != "http1":
        stem += f"_{args.upstream}_hs{args.handshake_ms:g}"
    replace = {"on": True, "off": False, None: True if args.handshake_ms else None}
    replace_cut = replace[args.replace_cut]
    if replace_cut is False:
        stem += "_noreplace"
    if args.tls:
        stem += "_tls"
    http2 = args.upstream == "http2"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-race-") as tmp:
            tls = make_certificate(Path(tmp)) if args.tls else None
            run = bench(requests, args.rate, args.handshake_ms, http2, replace_cut, tls)
            out = uvloop.run(run)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    args.out.mkdir(parents=True, exist_ok=True)
    series = {row["strategy"]: row["ttft_values_ms"] for row in out["rows"]}
    series["oracle"] = out["oracle_values_ms"]
    png_name = "race_cdf.png" if stem == "race_strategies" else f"{stem}_cdf.png"
    png = plot_ttft_cdf(series, args.out / png_name, title="TTFT", dashed=["oracle"])
    k3 = out["rows"][-1]
    check = k3["join_check"]
    text = "\n".join(
        [
            f"{requests} requests per strategy, open loop at {args.rate:g}/s, "
            f"{TOKENS} tokens each; B's p90 = {out['hedge_delay_ms']} ms; "
            f"max_extra_load 5 on every route; deployment priors = the published p50/p95; "
            f"upstreams {args.upstream}, {args.handshake_ms:g} ms a new connection, cut "
            f"connections replaced: {'auto' if replace_cut is None else replace_cut}"
            f"{', over TLS (the handshake paid in it)' if args.tls else ''}",
            "",
            out["table"],
            "",
            "Oracle: per request, the smallest planned TTFT (the simulator's draw) among A, B "
            "and C, from the race k=3 run where all three were asked at once; no gateway or "
            "network cost. Zero-overhead = per request, the earliest moment any attempt the "
            "gateway started could have produced its token (its start offset + its planned "
            "TTFT): the strategy as executed, on the same draws, without gateway or client "
            "cost; overhead = client TTFT minus that. Analytic = the intended plan on the "
            "fitted shapes (race k=2 = min(B, C), hedge = B then C). "
            f"Join check (race k=3): {check['consistent']}/{check['multi_attempt']} requests' "
            f"upstream arrival gaps match their attempt start gaps within "
            f"{GROUP_SPREAD_MS:g} ms (a miss is a wrong join or an attempt the gateway sent "
            "late).",
            "Other processes on this machine used "
            + ", ".join(f"{r['foreign_cpu_share'] * 100:.0f}%" for r in out["rows"])
            + " of one core during the runs (in table order).",
            "",
            out["profiles_table"],
            "",
            out["hedge_sweep"],
            "",
            out["shapes_table"],
        ]
    )
    print(text)
    for row in out["rows"]:
        row.pop("records")
        row.pop("best_planned_ms")
    (args.out / f"{stem}.md").write_text(text + "\n")
    (args.out / f"{stem}.json").write_bytes(to_json_bytes(out) + b"\n")
    print(f"\nwrote {png}, {args.out / (stem + '.json')} ({out['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
