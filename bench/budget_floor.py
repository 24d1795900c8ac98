"""The extra-load budget at low and high traffic: how many races of k=2 really race.

    python -m bench.budget_floor [--minutes M]

Requests arrive evenly at each rate for --minutes simulated minutes (a fake
clock, so it takes a second); each is a race of k=2, i.e. wants one extra
attempt, and asks the route's budget (gateway/streaming/policy.py LoadBudget,
60 s window) as the race engine does. Reported: the share of requests that
started both attempts, and the extra upstream load (extra attempts / requests).

Budgets compared: no `max_extra_load` (the default: races are never limited),
a share of 0.5 alone (the previous default), and a share of 0.5 with the floor
of 1 extra attempt per second (`min_extra_per_s`, the default floor).

Results: markdown on stdout and bench/results/budget_floor.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.loadtest.report import to_json_bytes
from gateway.streaming.policy import LoadBudget

RESULTS = Path(__file__).resolve().parent / "results"
RATES = (0.1, 0.5, 1.0, 2.0, 10.0, 100.0)  # requests per second
BUDGETS = {
    "no max_extra_load (default)": (None, 1.0),
    "max_extra_load 0.5, no floor (before)": (0.5, 0.0),
    "max_extra_load 0.5, floor 1/s": (0.5, 1.0),
}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def raced_share(share: float | None, floor: float, rate: float, minutes: float) -> float:
    """Share of k=2 race requests that got their extra attempt, after the first window."""
    clock = Clock()
    budget = LoadBudget.for_route(share, floor, clock=clock)
    requests = int(minutes * 60 * rate)
    warm = int(60 * rate)  # the first window fills up: measure after it
    raced = 0
    for i in range(requests):
        clock.now = i / rate
        budget.note_request()
        started = not budget.covers("race") or budget.try_spend()
        if i >= warm:
            raced += started
    return raced / max(1, requests - warm)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.budget_floor", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.minutes < 2:
        parser.error("--minutes must be >= 2 (the first 60 s window is not measured)")
    results = {
        name: {str(rate): raced_share(share, floor, rate, args.minutes) for rate in RATES}
        for name, (share, floor) in BUDGETS.items()
    }
    header = "| budget | " + " | ".join(f"{r:g} req/s" for r in RATES) + " |"
    lines = [
        f"Races of k=2, share of requests that started both attempts (= extra load), "
        f"{args.minutes:g} simulated minutes per rate, first 60 s window not counted.",
        "",
        header,
        "|---|" + "---|" * len(RATES),
    ]
    for name, by_rate in results.items():
        cells = " | ".join(f"{100 * v:.0f} %" for v in by_rate.values())
        lines.append(f"| {name} | {cells} |")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "budget_floor.md").write_text(text + "\n")
    (args.out / "budget_floor.json").write_bytes(to_json_bytes(results) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
