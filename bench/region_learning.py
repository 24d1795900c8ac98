"""Learning per region: does each client region converge to its own best deployment?

    python -m bench.region_learning [--requests N] [--warmup W] [--min-samples M] [--seeds S]

Three deployments, each fast from its own region and slow from the others (true
median TTFT in ms, lognormal with sigma 0.35; equal configured priors of
800/2000 ms):

               from eu   from us   from apac
    paris        250       550        700
    virginia     600       250        550
    tokyo       1100       900        300

The issue's story first: --warmup requests from the EU alone (paris is
learnt fast from there), then requests from the three regions in turn. The
route is `race` with k=2. The real planner (gateway/routing/planner.py) and
profiles (gateway/latency/profile.py) choose; the race is simulated from the
table above (both attempts start together, the first token wins, the loser is
recorded censored at the winner's TTFT), so the figures depend on the
selection logic only, not on sockets or the machine. One fake clock moves 1 s
per request.

Policies:
* least-known: this gateway (a region's empty or thin cell is only a
  pessimistic prior; a race gives its second slot to the candidate least known
  in the client's region);
* no exploration slot: the same profiles, the two best-predicted race (random
  exploration 0.02 as configured by default);
* borrowing (before): region-less levels answer for a region as if they were
  its own (the previous back-off), two best-predicted race.

Reported per policy and region: requests until the predicted-best (the first
slot) is the region's true best for good, the share of requests whose first slot
was wrong, and the client's TTFT p50/p95 over all requests and after
convergence; the p95 cost of exploration is least-known's p95 against the
oracle that always races the region's two truly fastest deployments.

Results: markdown on stdout and bench/results/region_learning.{md,json}.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.config import parse_config
from gateway.latency import LatencyProfiles, MemoryStore
from gateway.latency.censored import km_quantile
from gateway.latency.profile import Estimate, prior_quantile
from gateway.loadtest import percentile
from gateway.loadtest.report import to_json_bytes
from gateway.request import ChatRequest
from gateway.routing.health import HealthRegistry
from gateway.routing.planner import CandidatePlanner
from gateway.routing.table import RouteTable
from gateway.streaming.accounting import AttemptRecord, RaceRecord

RESULTS = Path(__file__).resolve().parent / "results"
T0 = 1_741_075_200.0  # 2025-03-04 08:00 UTC
REGIONS = ("eu", "us", "apac")
TRUE_P50_MS = {
    "paris": {"eu": 250.0, "us": 550.0, "apac": 700.0},
    "virginia": {"eu": 600.0, "us": 250.0, "apac": 550.0},
    "tokyo": {"eu": 1100.0, "us": 900.0, "apac": 300.0},
}
SIGMA = 0.35
PRIOR = {"ttft_p50_ms": 800.0, "ttft_p95_ms": 2000.0}
POLICIES = ("least-known", "no exploration slot", "borrowing (before)")
CHAT = ChatRequest(model="chat", messages=[{"role": "user", "content": "hi"}], stream=True)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class BorrowingProfiles(LatencyProfiles):
    """The previous back-off: any level with enough samples answers as the region's own."""

    def _ttft_quantile(
        self, deployment: str, region: str, hour: int, q: float, prior: tuple[float, float]
    ) -> Estimate:
        floor = 0.0
        for level, hist in self._levels(deployment, region, hour, "tc"):
            samples = hist.ttft_samples
            if not self._enough(samples):
                continue
            value = km_quantile(hist.events, hist.censored, q)
            if value is None:
                floor = max(floor, hist.censored.max_value() or 0.0)
                continue
            return Estimate(value, level, samples, hist.censored.count / samples)
        return Estimate(max(prior_quantile(prior[0], prior[1], q), floor), "prior", 0.0, 0.0)


def best(region: str) -> str:
    return min(TRUE_P50_MS, key=lambda d: TRUE_P50_MS[d][region])


def draw_ttft_s(deployment: str, region: str, rng: random.Random) -> float:
    return TRUE_P50_MS[deployment][region] / 1000.0 * math.exp(rng.gauss(0.0, SIGMA))


def make_planner(
    policy: str, min_samples: int, clock: Clock, seed: int
) -> tuple[CandidatePlanner, Any]:
    config = parse_config(
        {
            "latency": {"regions": list(REGIONS), "min_samples": min_samples},
            "providers": {"sim": {"kind": "openai", "base_url": "http://127.0.0.1:1"}},
            "deployments": {
                name: {"provider": "sim", "model": name, "prior": PRIOR} for name in TRUE_P50_MS
            },
            "routes": {"chat": {"strategy": "race", "k": 2, "deployments": list(TRUE_P50_MS)}},
        },
        env={},
    )
    kind = BorrowingProfiles if policy == "borrowing (before)" else LatencyProfiles
    profiles = kind(MemoryStore(), min_samples=min_samples, clock=clock, cache_ttl_s=0)
    health = HealthRegistry(dict.fromkeys(TRUE_P50_MS, 0.05), clock=clock)
    planner = CandidatePlanner(
        config,
        health,
        profiles,
        rng=random.Random(1000 + seed),  # random exploration's draws
        clock=clock,
        explore_least_known=policy == "least-known",
    )
    route = RouteTable(config).get("chat")
    return planner, route


def race(raced: list[str], region: str, rng: random.Random) -> tuple[float, RaceRecord]:
    """Both attempts start at once; the first token wins; the loser is censored there."""
    ttfts = {name: draw_ttft_s(name, region, rng) for name in raced}
    winner = min(raced, key=ttfts.__getitem__)
    won = ttfts[winner]
    record = RaceRecord("req", "chat", "race", region, winner=winner, ttft_s=won)
    for name in raced:
        attempt = AttemptRecord(name, 0.0, end_offset_s=won)
        if name == winner:
            attempt.outcome, attempt.ttft_s = "won", won
        else:
            attempt.outcome, attempt.censored_ttft_s = "cancelled", won
        record.attempts.append(attempt)
    record.stream_outcome, record.total_s = "completed", won
    return won, record


def run_policy(policy: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    clock = Clock(T0)
    planner, route = make_planner(policy, args.min_samples, clock, seed)
    profiles = planner.profiles
    assert profiles is not None
    draws = random.Random(seed)
    firsts: dict[str, list[str]] = {r: [] for r in REGIONS}
    ttfts: dict[str, list[float]] = {r: [] for r in REGIONS}
    schedule = ["eu"] * args.warmup + [REGIONS[i % 3] for i in range(args.requests)]
    for region in schedule:
        clock.now += 1.0
        plan = planner.plan(CHAT, route, region)
        raced = [c.deployment.name for c in plan.candidates[: plan.k]]
        won, record = race(raced, region, draws)
        profiles.observe(record, when=clock.now)
        firsts[region].append(raced[0])
        ttfts[region].append(won * 1000.0)
    return {"firsts": firsts, "ttfts": ttfts}


def oracle(args: argparse.Namespace, seed: int) -> dict[str, list[float]]:
    """Every request races its region's two truly fastest deployments."""
    draws = random.Random(seed)
    out: dict[str, list[float]] = {r: [] for r in REGIONS}
    schedule = ["eu"] * args.warmup + [REGIONS[i % 3] for i in range(args.requests)]
    for region in schedule:
        two = sorted(TRUE_P50_MS, key=lambda d: TRUE_P50_MS[d][region])[:2]
        out[region].append(min(draw_ttft_s(d, region, draws) for d in two) * 1000.0)
    return out


def converged_after(firsts: list[str], region: str) -> int | None:
    """Requests of the region until its first slot is the true best for good (None: never)."""
    right = best(region)
    wrong = [i for i, name in enumerate(firsts) if name != right]
    if not wrong:
        return 0
    last = wrong[-1] + 1
    return None if last >= len(firsts) else last


def summarize(runs: list[dict[str, Any]], oracles: list[dict[str, list[float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for region in REGIONS:
        afters = [converged_after(run["firsts"][region], region) for run in runs]
        done = [a for a in afters if a is not None]
        all_ttft = sorted(t for run in runs for t in run["ttfts"][region])
        wrong = sum(
            1 for run in runs for name in run["firsts"][region] if name != best(region)
        ) / max(1, sum(len(run["firsts"][region]) for run in runs))
        settled = sorted(
            t
            for run, after in zip(runs, afters, strict=True)
            if after is not None
            for t in run["ttfts"][region][after:]
        )
        ideal = sorted(t for o in oracles for t in o[region])
        out[region] = {
            "converged_runs": f"{len(done)}/{len(afters)}",
            "converged_after_max": max(done) if done else None,
            "converged_after_median": sorted(done)[len(done) // 2] if done else None,
            "wrong_first_share": wrong,
            "p50_ms": percentile(all_ttft, 50),
            "p95_ms": percentile(all_ttft, 95),
            "settled_p95_ms": percentile(settled, 95) if settled else None,
            "oracle_p95_ms": percentile(ideal, 95),
        }
    return out


def _f(value: float | None, digits: int = 0) -> str:
    return "never" if value is None else f"{value:,.{digits}f}"


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| policy | region (best) | converged | after (max / median) requests | wrong first slot "
        "| p50 ms | p95 ms | p95 after convergence | oracle p95 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for policy, per_region in results.items():
        for region, r in per_region.items():
            lines.append(
                f"| {policy} | {region} ({best(region)}) | {r['converged_runs']} | "
                f"{_f(r['converged_after_max'])} / {_f(r['converged_after_median'])} | "
                f"{100 * r['wrong_first_share']:.1f} % | {_f(r['p50_ms'])} | {_f(r['p95_ms'])} | "
                f"{_f(r['settled_p95_ms'])} | {_f(r['oracle_p95_ms'])} |"
            )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.region_learning", description=__doc__)
    parser.add_argument("--requests", type=int, default=1500, help="after the warm-up, all regions")
    parser.add_argument("--warmup", type=int, default=300, help="EU-only requests first")
    parser.add_argument("--min-samples", type=int, default=20, help="latency.min_samples")
    parser.add_argument("--seeds", type=int, default=10, help="independent runs per policy")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if min(args.requests, args.min_samples, args.seeds) < 1 or args.warmup < 0:
        parser.error("--requests, --min-samples, --seeds must be >= 1, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    oracles = [oracle(args, seed) for seed in range(args.seeds)]
    results = {
        policy: summarize([run_policy(policy, args, seed) for seed in range(args.seeds)], oracles)
        for policy in POLICIES
    }
    mine = results["least-known"]
    cost = {
        region: mine[region]["p95_ms"] / mine[region]["oracle_p95_ms"] - 1.0 for region in REGIONS
    }
    text = "\n".join(
        [
            f"3 deployments x 3 client regions, race k=2, latency.min_samples {args.min_samples}; "
            f"{args.warmup} EU-only requests, then {args.requests} in turn from eu, us, apac; "
            f"{args.seeds} seeds per policy. Convergence counts a region's own requests "
            "(warm-up included for eu).",
            "",
            table(results),
            "",
            "p95 cost of exploration (least-known p95 over all requests vs the oracle's): "
            + ", ".join(f"{r} {100 * c:+.1f} %" for r, c in cost.items())
            + ".",
        ]
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "region_learning.md").write_text(text + "\n")
    payload = {"args": {k: str(v) for k, v in vars(args).items()}, "results": results}
    (args.out / "region_learning.json").write_bytes(to_json_bytes(payload) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
