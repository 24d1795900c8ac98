"""Profile-driven selection vs the best static order, through simulated days by region.

    python -m bench.latency_profiles [--learn-days L] [--days D] [--per-cell N]
                                     [--measure-per-cell M] [--exploration E]
                                     [--scale S] [--quick]

Three deployments, one per region (dep-eu, dep-us, dep-apac), each a simulated
OpenAI-kind server shaped on GPT-4o-mini's published TTFT (p50 645 ms, p95
1,094 ms; latency-data.md), every time multiplied by --scale (default 0.2) so
a simulated day of one policy runs in about 30 s. The TTFT figures are at that
scale; the improvement is a ratio (a constant ~5 ms of client + gateway cost
per request is not scaled, which slightly favours the slower policy).

Where the latency comes from (all simulator-side; the gateway only sees TTFTs):
* distance: a client's own region's deployment x1.0; eu<->us x1.15,
  us<->apac x1.25, eu<->apac x1.4 (roughly the extra round trip on a ~650 ms
  TTFT). The gateway does not tell upstreams where its client is, so before
  each (region, hour) step the bench sets the simulator's current region
  (`SimCluster.region`) and each model's `region_multipliers` apply.
* hour of day: each deployment is slowest during its own region's business
  hours (eu 07-16, us 13-22, apac 00-09 UTC). "Off-peak 30-40 % faster, p95
  roughly doubling at peak": at peak the lognormal body is x1.5
  (`hourly_multipliers`, read from the simulator's clock) and 8 % of requests
  are stragglers x2.5 (set with `configure()` per hour), so peak p50 x1.55 and
  p95 x2.1; the hour either side is a shoulder (x1.25, 4 % stragglers). A
  region's nearest deployment is therefore slowest during that region's peak.

One fake clock (epoch seconds) is shared by the gateways (profiles, planner,
hour of day) and the simulator (hourly multipliers). It walks day by day, hour
by hour, and within each hour region by region; a (day, hour, region) cell's
requests carry the `x-gateway-region` header and start evenly spaced at
--rate per second; the clock moves on only once every race of the cell has
been recorded.

Policies, each with its own gateway (empty profiles, equal priors) on one
simulator:
* profile: route strategy `race` with k=1 (only the predicted-best deployment
  is asked; the others are fallbacks on failure), `latency.min_samples` 3. It
  first walks --learn-days days alone (default 6: with the measured day, a
  week), --per-cell (12) requests per cell at exploration --learn-exploration
  (0.3). The high share while learning stands in for traffic: a real gateway
  sees thousands of requests per region and hour, where 2 % exploration
  already gives every deployment enough samples; this bench sends 12. The
  planner's exploration is switched between phases by giving it an updated
  config copy (there is no runtime setting). Learning days are reported too.
* static: route strategy `fallback` in one fixed order, one gateway per each of
  the 3! = 6 orders. Nothing fails here, so only the first deployment ever
  answers and orders with the same head differ only by their draws. The best
  static order is the one with the lowest p95 TTFT.
* then all seven walk the --days measured days (default 1) together:
  --measure-per-cell (24) requests per cell and policy, the policies taking
  turns within each cell in an order that rotates every cell, so drift and
  whatever else runs on the machine hit them alike. The profile explores at
  --exploration (0.02) and keeps learning.
* ideal per cell (analytic, no gateway): every (region, hour) served by the
  deployment with the lowest true median there; the ceiling for selection.

Results: markdown on stdout and bench/results/latency_profiles.{md,json}.

Learning a region from scratch (a deployment fast from one region and slow from
another, exploration by the race's second slot) is bench/region_learning.py.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist
from typing import Any

import aiohttp
import uvloop

from gateway.config import parse_config
from gateway.loadtest import make_session, percentile, run_load
from gateway.loadtest.report import to_json_bytes
from gateway.logs import configure_logging
from gateway.runtime import Gateway
from gateway.server.app import start_server
from gateway.sim.config import parse_sim_config
from gateway.sim.server import SimCluster
from gateway.streaming.accounting import RaceRecord

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 606
T0 = datetime(2025, 3, 3, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
REGIONS = ("eu", "us", "apac")
DEPLOYMENTS = {region: f"dep-{region}" for region in REGIONS}  # home region -> deployment
BASE_P50_MS, BASE_P95_MS = 645.0, 1094.0  # GPT-4o-mini, latency-data.md
DISTANCE = {("eu", "us"): 1.15, ("us", "apac"): 1.25, ("eu", "apac"): 1.4}
PEAK_HOURS = {"eu": range(7, 17), "us": range(13, 23), "apac": range(0, 10)}  # UTC
LOAD = {  # load level -> (body multiplier, straggler share)
    "off": (1.0, 0.0),
    "shoulder": (1.25, 0.04),
    "peak": (1.5, 0.08),
}
STRAGGLER_MULTIPLIER = 2.5
TOKENS, ITL_MS = 4, 1.0
_Z95 = NormalDist().inv_cdf(0.95)


# --- the scenario (pure) ---------------------------------------------------------------


def distance(client: str, home: str) -> float:
    if client == home:
        return 1.0
    return DISTANCE.get((client, home)) or DISTANCE[(home, client)]


def load_level(home: str, hour: int) -> str:
    peak = PEAK_HOURS[home]
    if hour in peak:
        return "peak"
    if (hour + 1) % 24 in peak or (hour - 1) % 24 in peak:
        return "shoulder"
    return "off"


@dataclass(frozen=True, slots=True)
class Cell:
    """The true TTFT distribution of one deployment for one (region, hour), in ms."""

    median_ms: float
    sigma: float
    straggler_fraction: float

    def cdf(self, x_ms: float) -> float:
        if x_ms <= 0:
            return 0.0
        phi = NormalDist().cdf
        lx, mu, s = math.log(x_ms), math.log(self.median_ms), self.sigma
        body = phi((lx - mu) / s)
        slow = phi((lx - mu - math.log(STRAGGLER_MULTIPLIER)) / s)
        return (1 - self.straggler_fraction) * body + self.straggler_fraction * slow


def true_cell(home: str, region: str, hour: int, scale: float) -> Cell:
    body, stragglers = LOAD[load_level(home, hour)]
    sigma = math.log(BASE_P95_MS / BASE_P50_MS) / _Z95
    return Cell(BASE_P50_MS * scale * distance(region, home) * body, sigma, stragglers)


def mixture_quantile(cells: Sequence[Cell], q: float) -> float:
    """Quantile q of an equal-weight mixture of cells (bisection on log x)."""
    lo, hi = math.log(1e-3), math.log(1e7)
    for _ in range(80):
        mid = (lo + hi) / 2
        if sum(c.cdf(math.exp(mid)) for c in cells) / len(cells) < q:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def best_home(region: str, hour: int, scale: float) -> str:
    """The deployment (by home region) with the lowest true median for this cell."""
    return min(
        REGIONS, key=lambda home: mixture_quantile([true_cell(home, region, hour, scale)], 0.5)
    )


def ideal(scale: float) -> dict[str, float]:
    cells = [true_cell(best_home(r, h, scale), r, h, scale) for r in REGIONS for h in range(24)]
    return {f"p{p}": mixture_quantile(cells, p / 100) for p in (50, 95, 99)}


def sim_data(scale: float) -> dict[str, Any]:
    servers = {}
    for home, dep in DEPLOYMENTS.items():
        servers[f"sim-{home}"] = {
            "kind": "openai",
            "models": {
                dep: {
                    "ttft_p50_ms": BASE_P50_MS * scale,
                    "ttft_p95_ms": BASE_P95_MS * scale,
                    "straggler_multiplier": STRAGGLER_MULTIPLIER,
                    "tokens": TOKENS,
                    "itl_ms": ITL_MS,
                    "hourly_multipliers": [LOAD[load_level(home, h)][0] for h in range(24)],
                    "region_multipliers": {r: distance(r, home) for r in REGIONS},
                }
            },
        }
    return {"seed": SEED, "servers": servers}


def set_hour(cluster: SimCluster, hour: int) -> None:
    """The straggler share follows each deployment's load this hour (the body multiplier
    comes from the simulator's own clock and `hourly_multipliers`)."""
    for home, dep in DEPLOYMENTS.items():
        stragglers = LOAD[load_level(home, hour)][1]
        cluster.configure(f"sim-{home}", dep, straggler_fraction=stragglers)


# --- policies and gateway config ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    route: str
    learn_days: int  # walked first, at `learn_exploration`, reported apart
    days: int  # then measured, at the configured exploration
    learn_exploration: float = 0.0


def static_route(order: Sequence[str]) -> str:
    return "static-" + "-".join(d.removeprefix("dep-") for d in order)


def gateway_data(
    cluster: SimCluster, scale: float, min_samples: int, exploration: float
) -> dict[str, Any]:
    routes: dict[str, Any] = {
        "profile": {"strategy": "race", "k": 1, "deployments": list(DEPLOYMENTS.values())}
    }
    for order in itertools.permutations(DEPLOYMENTS.values()):
        routes[static_route(order)] = {"strategy": "fallback", "deployments": list(order)}
    prior = {"ttft_p50_ms": BASE_P50_MS * scale, "ttft_p95_ms": BASE_P95_MS * scale}
    return {
        "logging": {"level": "warning"},
        "latency": {
            "regions": list(REGIONS),
            "default_region": "eu",
            "min_samples": min_samples,
            "exploration": exploration,
            "prewarm": {"enabled": False},
        },
        "providers": {
            name: {
                "kind": "openai",
                "base_url": cluster.base_url(name),
                "api_key": "sim-key",
                "max_connections": 64,
            }
            for name in cluster.servers
        },
        "deployments": {
            # equal priors: at the start nothing tells the deployments apart
            dep: {"provider": f"sim-{home}", "model": dep, "prior": prior}
            for home, dep in DEPLOYMENTS.items()
        },
        "routes": routes,
    }


def set_exploration(gateway: Gateway, exploration: float) -> None:
    """Change the planner's exploration share between phases (config is immutable and
    there is no runtime setting for it, so the planner gets an updated copy)."""
    config = gateway.planner.config
    latency = dataclasses.replace(config.latency, exploration=exploration)
    gateway.planner.config = dataclasses.replace(config, latency=latency)


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RaceCounter:
    """Gateway observer: counts finished races (the profile records at race end)."""

    def __init__(self) -> None:
        self.count = 0

    def on_race_end(self, record: RaceRecord) -> None:
        self.count += 1


@dataclass(frozen=True, slots=True)
class Sample:
    day: int  # 0-based; learning days first
    learning: bool
    hour: int
    region: str
    ttft_ms: float
    deployment: str


@dataclass(slots=True)
class Run:
    policy: Policy
    samples: list[Sample]
    errors: int

    def values(self, learning: bool | None = False, day: int | None = None) -> list[float]:
        return [
            s.ttft_ms
            for s in self.samples
            if (learning is None or s.learning == learning) and (day is None or s.day == day)
        ]


class Live:
    """One policy's gateway, serving on a local port, and what it measured."""

    def __init__(self, policy: Policy, config: dict[str, Any], clock: FakeClock) -> None:
        self.policy = policy
        self.gateway = Gateway(parse_config(config, env={}), clock=clock)
        self.gateway.rng.seed(SEED)  # exploration draws: the same sequence every run
        self.races = RaceCounter()
        self.gateway.add_observer(self.races)
        self.run = Run(policy, [], 0)
        self.sent = 0
        self.url = ""
        self.runner: Any = None

    async def start(self) -> Live:
        self.runner, self.url = await start_server(self.gateway, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def cell(
        self,
        http: aiohttp.ClientSession,
        day: int,
        learning: bool,
        hour: int,
        region: str,
        requests: int,
        rate: float,
    ) -> None:
        """Send one cell's requests (the clock and simulator are already set for it)."""
        result = await run_load(
            self.url + "/v1",
            self.policy.route,
            rate=rate,  # open loop: the cell's requests start evenly spaced
            requests=requests,
            headers={"x-gateway-region": region},
            session=http,
            timeout_s=30.0,
            progress=False,
        )
        self.sent += requests
        for sample in result.samples:
            if sample.error is not None or sample.ttft_s is None:
                self.run.errors += 1
                continue
            ttft_ms, dep = sample.ttft_s * 1000, sample.deployment or "?"
            self.run.samples.append(Sample(day, learning, hour, region, ttft_ms, dep))
        # every race is recorded at this cell's time before the clock moves on
        for _ in range(400):
            if self.races.count >= self.sent:
                break
            await asyncio.sleep(0.005)


def cells(day: int) -> list[tuple[int, int, str, float]]:
    """(hour, region index, region, clock time) of one day, in walking order."""
    return [
        (hour, i, region, T0 + day * 86400 + hour * 3600 + i * 1200 + 600)
        for hour in range(24)
        for i, region in enumerate(REGIONS)
    ]


async def walk(
    policies: list[Policy],
    cluster: SimCluster,
    config: dict[str, Any],
    clock: FakeClock,
    args: argparse.Namespace,
    http: aiohttp.ClientSession,
) -> list[Run]:
    """The profile policy learns alone; then every policy walks the measured days together,
    cell by cell, one policy after another in an order that rotates every cell (so whatever
    else the machine does hits them alike)."""
    cluster.reset()
    clock.now = T0
    lives: list[Live] = []
    try:
        profile = await Live(policies[0], config, clock).start()
        lives.append(profile)
        set_exploration(profile.gateway, args.learn_exploration)
        for day in range(args.learn_days):
            for hour, _, region, now in cells(day):
                set_hour(cluster, hour)
                clock.now, cluster.region = now, region
                await profile.cell(http, day, True, hour, region, args.per_cell, args.rate)
            print(f"profile: learning day {day + 1}/{args.learn_days} done", file=sys.stderr)
        set_exploration(profile.gateway, args.exploration)
        for policy in policies[1:]:
            lives.append(await Live(policy, config, clock).start())
        turn = 0
        for day in range(args.learn_days, args.learn_days + args.days):
            for hour, _, region, now in cells(day):
                set_hour(cluster, hour)
                clock.now, cluster.region = now, region
                order = lives[turn % len(lives) :] + lives[: turn % len(lives)]
                turn += 1
                for live in order:
                    await live.cell(
                        http, day, False, hour, region, args.measure_per_cell, args.rate
                    )
            print(f"all policies: measured day {day + 1} done", file=sys.stderr)
    finally:
        for live in lives:
            await live.close()
    return [live.run for live in lives]


# --- report ---------------------------------------------------------------------------


def stats(values: Sequence[float]) -> dict[str, Any]:
    data = sorted(values)
    return {"count": len(data)} | {f"p{p}": percentile(data, p) for p in (50, 95, 99)}


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f} %"


def choice_map(samples: Sequence[Sample], scale: float) -> tuple[str, int, int]:
    """Per region, the deployment answering most in each hour (E/U/A), vs the true best."""
    lines = []
    hits = cells = 0
    for region in REGIONS:
        picked, truth = [], []
        for hour in range(24):
            counts: dict[str, int] = {}
            for s in samples:
                if s.region == region and s.hour == hour:
                    counts[s.deployment] = counts.get(s.deployment, 0) + 1
            top = max(counts, key=counts.__getitem__) if counts else "?"
            best = DEPLOYMENTS[best_home(region, hour, scale)]
            picked.append(top.removeprefix("dep-")[:1].upper())
            truth.append(best.removeprefix("dep-")[:1].upper())
            cells += 1
            hits += top == best
        lines.append(f"| {region} | `{''.join(picked)}` | `{''.join(truth)}` |")
    head = "| client region | most used, hours 00..23 UTC | true best |\n|---|---|---|"
    return head + "\n" + "\n".join(lines), hits, cells


def static_analytic(head: str, scale: float) -> dict[str, float]:
    """What a static order whose first deployment is `head` gives, without a gateway."""
    cells = [true_cell(head, r, h, scale) for r in REGIONS for h in range(24)]
    return {f"p{p}": mixture_quantile(cells, p / 100) for p in (50, 95)}


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging("json", "warning")
    sim_config, problems = parse_sim_config(sim_data(args.scale))
    if sim_config is None:
        raise SystemExit("bad sim config:\n" + "\n".join(problems))
    clock = FakeClock()
    started = time.monotonic()
    policies = [Policy("profile", "profile", args.learn_days, args.days, args.learn_exploration)]
    for order in itertools.permutations(DEPLOYMENTS.values()):
        policies.append(Policy("static " + " > ".join(order), static_route(order), 0, args.days))
    async with SimCluster(sim_config, clock=clock) as cluster:
        config = gateway_data(cluster, args.scale, args.min_samples, args.exploration)
        async with make_session(64) as http:
            runs = await walk(policies, cluster, config, clock, args, http)
    return assemble(args, runs, time.monotonic() - started)


def assemble(args: argparse.Namespace, runs: list[Run], seconds: float) -> dict[str, Any]:
    profile, statics = runs[0], runs[1:]
    static_stats = {run.policy.name: stats(run.values()) for run in statics}
    best_static = min(static_stats, key=lambda name: static_stats[name]["p95"] or math.inf)
    best = static_stats[best_static]
    rows: list[dict[str, Any]] = []

    def row(name: str, st: dict[str, Any], errors: int | None, note: str = "") -> None:
        gains = {}
        for p in ("p50", "p95"):
            ok = st[p] is not None and best[p]
            gains[f"{p}_change"] = st[p] / best[p] - 1 if ok else None
        rows.append({"policy": name, **st, "errors": errors, **gains, "note": note})

    measured = f"day{'s' if args.days > 1 else ''} {args.learn_days + 1}"
    if args.days > 1:
        measured += f"-{args.learn_days + args.days}"
    row(
        f"**profile, {measured}** (measured)",
        stats(profile.values()),
        profile.errors,
        f"race k=1, exploration {args.exploration:g}, min_samples {args.min_samples}",
    )
    for day in range(args.learn_days):
        row(
            f"profile, day {day + 1} (learning)",
            stats(profile.values(True, day)),
            None,
            f"exploration {args.learn_exploration:g}" + ("; cold start" if day == 0 else ""),
        )
    for name in sorted(static_stats, key=lambda n: static_stats[n]["p95"] or math.inf):
        run = next(r for r in statics if r.policy.name == name)
        head = run.policy.route.split("-")[1]
        expect = static_analytic(head, args.scale)
        note = f"analytic p50 {expect['p50']:.0f}, p95 {expect['p95']:.0f}"
        bold = name == best_static
        row(f"**{name}** (best static)" if bold else name, static_stats[name], run.errors, note)
    ideal_q = ideal(args.scale)
    row("ideal per cell (analytic)", {"count": None, **ideal_q}, None, "true best, no gateway")
    lines = [
        "| policy | requests | TTFT p50 ms | TTFT p95 ms | TTFT p99 ms | p50 vs best static "
        "| p95 vs best static | errors | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['policy']} | {_f(r['count'])} | {_f(r['p50'])} | {_f(r['p95'])} "
            f"| {_f(r['p99'])} | {_pct(r['p50_change'])} | {_pct(r['p95_change'])} "
            f"| {_f(r['errors'])} | {r['note']} |"
        )
    last = [s for s in profile.samples if not s.learning]
    choices, hits, cells = choice_map(last, args.scale)
    share = {
        dep: sum(1 for s in last if s.deployment == dep) / max(1, len(last))
        for dep in DEPLOYMENTS.values()
    }
    headline = rows[0]
    return {
        "table": "\n".join(lines),
        "choices": choices,
        "choice_hits": hits,
        "choice_cells": cells,
        "share_measured": share,
        "best_static": best_static,
        "headline": {
            "profile_p50_ms": headline["p50"],
            "profile_p95_ms": headline["p95"],
            "best_static_p50_ms": best["p50"],
            "best_static_p95_ms": best["p95"],
            "p95_change": headline["p95_change"],
            "p50_change": headline["p50_change"],
        },
        "rows": rows,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "seconds": seconds,
        "cells": {run.policy.name: compact([asdict(s) for s in run.samples]) for run in runs},
    }


def compact(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (day, hour, region): TTFTs (ms, 0.1 ms) and how often each deployment answered."""
    cells: dict[tuple[int, int, str], dict[str, Any]] = {}
    for s in samples:
        key = (s["day"], s["hour"], s["region"])
        cell = cells.setdefault(
            key,
            {
                "day": s["day"],
                "learning": s["learning"],
                "hour": s["hour"],
                "region": s["region"],
                "ttft_ms": [],
                "deployments": {},
            },
        )
        cell["ttft_ms"].append(round(s["ttft_ms"], 1))
        cell["deployments"][s["deployment"]] = cell["deployments"].get(s["deployment"], 0) + 1
    return list(cells.values())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency_profiles",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--learn-days", type=int, default=6, help="profile: days to learn")
    parser.add_argument("--learn-exploration", type=float, default=0.3)
    parser.add_argument("--days", type=int, default=1, help="measured days, every policy")
    parser.add_argument("--exploration", type=float, default=0.02, help="when measured")
    parser.add_argument("--min-samples", type=int, default=3)
    parser.add_argument(
        "--per-cell", type=int, default=12, help="learning requests per (day, hour, region)"
    )
    parser.add_argument(
        "--measure-per-cell", type=int, default=24, help="measured requests per cell and policy"
    )
    parser.add_argument(
        "--rate", type=float, default=200.0, help="requests per second within a cell (open loop)"
    )
    parser.add_argument("--scale", type=float, default=0.2, help="time scale of every latency")
    parser.add_argument("--quick", action="store_true", help="2 learning days, 6 per cell")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.learn_days, args.per_cell, args.measure_per_cell = 2, 6, 6
    if min(args.days, args.per_cell, args.measure_per_cell) < 1 or args.learn_days < 0:
        parser.error("--days, --per-cell, --measure-per-cell must be >= 1, --learn-days >= 0")
    if args.scale <= 0 or args.rate <= 0:
        parser.error("--scale and --rate must be > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out = uvloop.run(bench(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    h = out["headline"]
    share = ", ".join(f"{dep} {100 * v:.0f} %" for dep, v in out["share_measured"].items())
    text = "\n".join(
        [
            f"{len(DEPLOYMENTS)} deployments x {len(REGIONS)} client regions x 24 h; every "
            f"latency x{args.scale:g} (base p50 {BASE_P50_MS * args.scale:.0f} ms, p95 "
            f"{BASE_P95_MS * args.scale:.0f} ms); requests of a cell start at {args.rate:g}/s. "
            f"Profile: {args.learn_days} learning day(s) alone, {args.per_cell} requests per "
            f"(day, hour, region), exploration {args.learn_exploration:g}; then {args.days} "
            f"measured day(s) with every policy, {args.measure_per_cell} requests per cell "
            f"and policy, policies taking turns cell by cell, profile exploration "
            f"{args.exploration:g}. One fake clock drives gateways and simulator.",
            "",
            out["table"],
            "",
            f"Profile-driven vs best static order ({out['best_static']}): p95 "
            f"{_f(h['profile_p95_ms'])} vs {_f(h['best_static_p95_ms'])} ms "
            f"({_pct(h['p95_change'])}), p50 {_f(h['profile_p50_ms'])} vs "
            f"{_f(h['best_static_p50_ms'])} ms ({_pct(h['p50_change'])}).",
            "",
            "Most used deployment per hour on the measured day(s) (E = dep-eu, U = dep-us, "
            f"A = dep-apac): {out['choice_hits']}/{out['choice_cells']} (region, hour) cells "
            f"match the true best (lowest true median); traffic share {share}.",
            "",
            out["choices"],
            "",
            f"{out['seconds']:.0f} s.",
        ]
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency_profiles.md").write_text(text + "\n")
    (args.out / "latency_profiles.json").write_bytes(to_json_bytes(out) + b"\n")
    print(f"\nwrote {args.out / 'latency_profiles.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
