"""Analysis for bench.race_strategies: join attempts to simulator draws, tables, checks.

Pure functions over the gateway's RaceRecords and the simulator's log; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.shapes import Shape, hedge_survival, race_survival, survival_quantile
from gateway.loadtest import percentile
from gateway.sim.log import SimRecord
from gateway.streaming.accounting import RaceRecord

GROUP_SPREAD_MS = 20.0  # the upstream requests of one race arrive within this of their plan


class RaceCollector:
    """Gateway observer: the RaceRecord of every request, by request id."""

    def __init__(self) -> None:
        self.records: dict[str, RaceRecord] = {}

    def on_race_end(self, record: RaceRecord) -> None:
        self.records[record.request_id] = record


@dataclass(slots=True)
class Attempt:
    deployment: str
    start_ms: float  # since the request started (gateway's view)
    planned_ms: float | None  # the simulator's draw for this upstream request
    arrival: float | None  # simulator clock


@dataclass(slots=True)
class Joined:
    attempts: dict[int, list[Attempt]] = field(default_factory=dict)
    checked: int = 0  # requests with >= 2 attempts
    consistent: int = 0  # ... whose simulator arrival gaps match the gateway's start gaps


def join(
    prefix: str,
    requests: int,
    gap_s: float,
    races: dict[str, RaceRecord],
    sim: list[SimRecord],
) -> Joined:
    """Pair each gateway attempt with the simulator request it became.

    The simulator numbers each deployment's requests 0, 1, 2 ... in arrival order
    (reset before each strategy). Attempts to one deployment start at the
    request's due time (index x gap) plus the attempt's start offset, far enough
    apart that they arrive in that order: the k-th attempt to a deployment is
    its request n = k. Checked: within a request, the gaps between simulator
    arrivals must match the gaps between attempt starts (within GROUP_SPREAD_MS).
    """
    per_dep: dict[str, list[tuple[float, int, float]]] = {}
    for i in range(requests):
        race = races.get(f"{prefix}{i}")
        if race is None:
            continue
        for a in race.attempts:
            per_dep.setdefault(a.deployment, []).append(
                (i * gap_s + a.start_offset_s, i, a.start_offset_s * 1000)
            )
    by_n = {(r.model, r.request_n): r for r in sim if r.request_n is not None}
    out = Joined()
    for dep, items in per_dep.items():
        items.sort()
        model = f"model-{dep.lower()}"
        for n, (_, i, start_ms) in enumerate(items):
            rec = by_n.get((model, n))
            out.attempts.setdefault(i, []).append(
                Attempt(
                    dep,
                    start_ms,
                    rec.planned_ttft_ms if rec else None,
                    rec.arrival if rec else None,
                )
            )
    for attempts in out.attempts.values():
        if len(attempts) < 2:
            continue
        out.checked += 1
        first = attempts[0]
        if first.arrival is None:
            continue
        if all(
            a.arrival is not None
            and abs((a.arrival - first.arrival) * 1000 - (a.start_ms - first.start_ms))
            <= GROUP_SPREAD_MS
            for a in attempts[1:]
        ):
            out.consistent += 1
    return out


def earliest_possible(attempts: list[Attempt]) -> float | None:
    """The first moment any started attempt could have produced its token (ms)."""
    times = [a.start_ms + a.planned_ms for a in attempts if a.planned_ms is not None]
    return min(times) if times else None


def q(values: Sequence[float], p: float) -> float | None:
    return percentile(sorted(values), p)


def triple(values: Sequence[float]) -> dict[str, float | None]:
    return {"p50": q(values, 50), "p95": q(values, 95), "p99": q(values, 99)}


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(rows: list[dict[str, Any]], oracle: list[float]) -> tuple[str, dict[str, Any]]:
    o = triple(oracle)
    oracle_p99 = o["p99"] or float("nan")
    lines = [
        "| strategy | upstream requests started (per request) | TTFT p50 ms | TTFT p95 ms "
        "| TTFT p99 ms | zero-overhead p99 ms | analytic p99 ms | p99 / oracle p99 "
        "| overhead p50 / p99 ms | extra upstream requests | wasted tokens (sim out / gw acct) "
        "| errors |",
        "|" + "---|" * 12,
    ]
    for row in rows:
        t, ov = row["ttft_ms"], row["overhead_ms"]
        ratio = t["p99"] / oracle_p99 if t["p99"] else None
        started = ", ".join(f"{k} {v}" for k, v in row["started"].items())
        errors = ", ".join(f"{k}: {v}" for k, v in row["errors"].items()) or "0"
        lines.append(
            f"| {row['strategy']} | {started} | {_f(t['p50'])} | {_f(t['p95'])} "
            f"| {_f(t['p99'])} | {_f(row['zero_overhead_ttft_ms']['p99'])} "
            f"| {_f(row['ideal_ttft_ms']['p99'])} | {_f(ratio, 2)} "
            f"| {_f(ov['p50'], 1)} / {_f(ov['p99'], 1)} "
            f"| {row['extra_upstream'] * 100:+.1f}% "
            f"| {row['wasted_tokens_sim']} / {row['wasted_tokens_gateway']:.0f} | {errors} |"
        )
    lines.append(
        f"| **oracle**: min planned TTFT of A, B, C per request (race k=3 draws) | - "
        f"| {_f(o['p50'])} | {_f(o['p95'])} | {_f(o['p99'])} | {_f(o['p99'])} "
        f"| {_f(rows[-1]['ideal_ttft_ms']['p99'])} | 1.00 | - | - | - | - |"
    )
    by = {row["key"]: row for row in rows}
    single = by["single"]["ttft_ms"]["p99"]
    race2 = by["race2"]["ttft_ms"]["p99"]
    race_gain = single - race2
    ideal = {k: by[k]["ideal_ttft_ms"]["p99"] for k in ("single", "race2", "hedge", "race3")}
    checks: dict[str, Any] = {
        "race_k2_p99_over_oracle_p99": race2 / oracle_p99,
        "race_k2_within_1_15x_oracle": race2 <= 1.15 * oracle_p99,
        "race_k2_analytic_p99_over_oracle": ideal["race2"] / ideal["race3"],
        "race_k2_p99_gain_ms": race_gain,
    }
    lines += [
        "",
        f"- race k=2 p99 / oracle p99 = {checks['race_k2_p99_over_oracle_p99']:.2f} "
        f"(aim <= 1.15): {'PASS' if checks['race_k2_within_1_15x_oracle'] else 'FAIL'}"
        f" (analytic min(B,C) vs min(A,B,C), zero overhead: "
        f"{checks['race_k2_analytic_p99_over_oracle']:.2f})",
    ]
    ideal_share = (ideal["single"] - ideal["hedge"]) / (ideal["single"] - ideal["race2"])
    checks["hedge_analytic_share_of_race_gain"] = ideal_share
    for key in ("hedge", "hedge_profile"):
        row = by[key]
        gain = single - row["ttft_ms"]["p99"]
        share = gain / race_gain if race_gain > 0 else None
        extra = row["extra_upstream"]
        ok = share is not None and share >= 0.8 and extra <= 0.12
        checks[key] = {"p99_gain_ms": gain, "share_of_race_gain": share, "extra": extra, "ok": ok}
        delay = row["second_attempt_start_ms"] or {}
        lines.append(
            f"- {row['strategy']}: p99 gain {gain:.0f} ms = "
            f"{_f(share * 100 if share is not None else None)}% of race k=2's {race_gain:.0f} ms "
            f"with {extra * 100:.1f}% extra upstream requests (aim >= 80% with <= 12%): "
            f"{'PASS' if ok else 'FAIL'} (hedges started at median {_f(delay.get('p50'))} ms; "
            f"analytic share at B's p90: {ideal_share * 100:.0f}%)"
        )
    return "\n".join(lines), {"oracle_ms": o, "checks": checks}


def profiles_table(rows: list[dict[str, Any]]) -> str:
    """The gateway's latency-profile predictions after each strategy's run."""
    names = sorted(rows[0]["profiles_after"])
    lines = [
        "| profiles after | " + " | ".join(f"{n} p50 / p90 ms (level)" for n in names) + " |",
        "|" + "---|" * (len(names) + 1),
    ]
    for row in rows:
        cells = []
        for name in names:
            p = row["profiles_after"][name]
            cells.append(f"{p['p50_ms']:.0f} / {p['p90_ms']:.0f} ({p['level']})")
        lines.append(f"| {row['strategy']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def hedge_sweep(shapes: dict[str, Shape]) -> str:
    """Analytic: hedge B -> C at several delays, p99 and extra load (no overhead)."""
    single = survival_quantile(race_survival(shapes["B"]), 0.99)
    race2 = survival_quantile(race_survival(shapes["B"], shapes["C"]), 0.99)
    parts = []
    for q_delay in (0.5, 0.75, 0.9, 0.95):
        delay = shapes["B"].quantile(q_delay)
        p99 = survival_quantile(hedge_survival(shapes["B"], shapes["C"], delay), 0.99)
        share = (single - p99) / (single - race2)
        parts.append(
            f"p{q_delay * 100:g} = {delay:.0f} ms: p99 {p99:.0f} ms, "
            f"{share * 100:.0f}% of the race gain, +{(1 - q_delay) * 100:.0f}% requests"
        )
    return "Analytic hedge B -> C by delay (no overhead): " + "; ".join(parts) + "."


def shapes_table(
    shapes: dict[str, Shape],
    targets: dict[str, tuple[float, float, float, float]],
    k3_records: list[SimRecord],
) -> str:
    lines = [
        "| deployment | target p50/p95/p99 ms | fitted sim keys "
        "| observed draws p50/p95/p99 ms (n) |",
        "|---|---|---|---|",
    ]
    for name, shape in shapes.items():
        p50, p95, p99, _ = targets[name]
        model = f"model-{name.lower()}"
        draws = [r.planned_ttft_ms for r in k3_records if r.model == model and r.planned_ttft_ms]
        got = triple([d for d in draws if d is not None])
        keys = ", ".join(f"{k}={v:g}" for k, v in shape.sim_keys().items())
        lines.append(
            f"| {name} | {p50:.0f} / {p95:.0f} / {p99:.0f} | {keys} "
            f"| {_f(got['p50'])} / {_f(got['p95'])} / {_f(got['p99'])} ({len(draws)}) |"
        )
    return "\n".join(lines)
