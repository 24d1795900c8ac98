"""PNG charts of a regress report: TTFT and cost per target, against the baseline.

matplotlib is imported only when charts are asked for (it is the optional `bench` extra).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gateway.regress.report import target_stats


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_charts(report: dict[str, Any], directory: str | os.PathLike[str]) -> list[Path]:
    """ttft.png (median TTFT p50 per target, p95 as whiskers) and cost.png (cost of one
    pass over the suite per target), each against the baseline."""
    stats = target_stats(report["matrix"])
    if not stats:
        return []
    plt = _pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    names = list(stats)
    xs = list(range(len(names)))
    width = 0.38
    paths = []

    def bars(ax: Any, now: list[float], base: list[float]) -> None:
        ax.bar([x - width / 2 for x in xs], base, width, label="baseline", color="#9aa5b1")
        ax.bar([x + width / 2 for x in xs], now, width, label="this run", color="#2f6fdd")
        ax.set_xticks(xs, names, rotation=20, ha="right")
        ax.legend()
        ax.grid(axis="y", alpha=0.3)

    def values(key: str) -> list[float]:
        return [stats[n][key] or 0.0 for n in names]

    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(names) + 2), 4))
    bars(ax, values("ttft_p50_ms"), values("baseline_ttft_p50_ms"))
    for offset, key in ((-width / 2, "baseline_ttft_p95_ms"), (width / 2, "ttft_p95_ms")):
        p95 = values(key)
        ax.scatter([x + offset for x in xs], p95, marker="_", s=300, color="black", zorder=3)
    ax.set_ylabel("TTFT ms (bar: median p50, tick: p95)")
    ax.set_title("Time to first token per target")
    fig.tight_layout()
    paths.append(out / "ttft.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(names) + 2), 4))
    bars(ax, values("cost_usd"), values("baseline_cost_usd"))
    ax.set_ylabel("USD per pass over the suite")
    ax.set_title("Cost per target")
    fig.tight_layout()
    paths.append(out / "cost.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
