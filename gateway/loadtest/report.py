"""Output of a load run: a readable text summary, JSON, and optional PNG plots.

matplotlib is imported only when a plot is asked for (it is an optional
`bench` extra and slow to import).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from gateway.loadtest.client import LoadResult
from gateway.loadtest.stats import Distribution


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _row(name: str, dist: Distribution) -> str:
    cells = [dist.p50, dist.p90, dist.p99, dist.p999, dist.mean, dist.max]
    return f"  {name:<6}" + "".join(f"{_ms(v):>9}" for v in cells) + f"{dist.count:>9}"


def format_text(result: LoadResult) -> str:
    """A short human summary of one run."""
    spec, summary = result.spec, result.summary
    if spec.mode == "open":
        shape = f"open loop, {spec.rate:g} req/s" + (" (Poisson)" if spec.poisson else "")
        if spec.concurrency is not None:
            shape += f", at most {spec.concurrency} in flight"
    else:
        shape = f"closed loop, concurrency {spec.slots}"
    bounds = []
    if spec.requests is not None:
        bounds.append(f"{spec.requests} requests")
    if spec.duration_s is not None:
        bounds.append(f"{spec.duration_s:g} s")
    lines = [
        f"{spec.url}  model={spec.model}",
        f"{shape}; limit: {' or '.join(bounds)}",
        "",
        f"requests  {summary.requests} sent, {summary.ok} ok, {summary.error_count} failed"
        f" in {summary.elapsed_s:.2f} s",
        f"rate      {summary.requests_per_s:.1f} req/s ok, "
        f"{summary.chunks_per_s:.0f} token chunks/s ({summary.tokens} chunks), "
        f"{summary.chars_per_s:.0f} chars/s",
        "",
        f"  {'ms':<6}"
        + "".join(f"{h:>9}" for h in ("p50", "p90", "p99", "p99.9", "mean", "max"))
        + f"{'n':>9}",
        _row("TTFT", summary.ttft_ms),
        _row("ITL", summary.itl_ms),
        _row("total", summary.total_ms),
    ]
    if summary.errors:
        lines.append("")
        lines.append("errors    " + ", ".join(f"{k}: {v}" for k, v in summary.errors.items()))
        details = _first_details(result)
        lines.extend(f"  {kind}: {detail}" for kind, detail in details.items())
    deployments = _winners(result)
    if deployments:
        lines.append("")
        lines.append("served by " + ", ".join(f"{k}: {v}" for k, v in deployments.items()))
    return "\n".join(lines)


def _first_details(result: LoadResult) -> dict[str, str]:
    out: dict[str, str] = {}
    for sample in result.samples:
        if sample.error is not None and sample.error_detail and sample.error not in out:
            out[sample.error] = sample.error_detail
    return out


def _winners(result: LoadResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sample in result.samples:
        if sample.deployment:
            counts[sample.deployment] = counts.get(sample.deployment, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def to_json_bytes(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)


def write_json(path: str | Path, result: LoadResult, samples: bool = True) -> None:
    """The whole run (spec, summary and every sample) as JSON; "-" writes to stdout."""
    data = to_json_bytes(result.to_dict(samples=samples))
    if str(path) == "-":
        import sys

        sys.stdout.buffer.write(data + b"\n")
        sys.stdout.flush()
        return
    Path(path).write_bytes(data + b"\n")


# --- plots ---------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_ms(minor: bool = False) -> Any:
    """Tick labels as plain numbers (not 10^x); minor ticks labelled only at 2 and 5."""
    from matplotlib.ticker import FuncFormatter

    def label(x: float, _pos: int) -> str:
        if minor:
            lead = f"{x:.0e}"[0]
            if lead not in ("2", "5"):
                return ""
        return f"{x:g}"

    return FuncFormatter(label)


def ecdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """Sorted values and their empirical CDF (i / n for the i-th smallest, 1-based)."""
    data = sorted(values)
    n = len(data)
    return data, [(i + 1) / n for i in range(n)]


def plot_ttft_cdf(
    series: Mapping[str, Sequence[float]],
    path: str | Path,
    title: str = "TTFT",
    dashed: Sequence[str] = (),
    tail: bool = True,
) -> Path:
    """CDF of TTFT (ms) per named series; with `tail`, a second panel shows 1 - CDF on a
    log scale so p99/p99.9 differences are visible. Series named in `dashed` are dashed."""
    plt = _pyplot()
    panels = 2 if tail else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), squeeze=False)
    cdf_ax = axes[0][0]
    for name, values in series.items():
        if not values:
            continue
        xs, ys = ecdf(values)
        style = "--" if name in dashed else "-"
        cdf_ax.step(xs, ys, where="post", linestyle=style, label=f"{name} (n={len(xs)})")
        if tail:
            n = len(xs)
            surv = [max(1.0 - y, 0.5 / n) for y in ys]
            axes[0][1].step(xs, surv, where="post", linestyle=style, label=name)
    every = [v for values in series.values() for v in values if v > 0]
    wide = bool(every) and max(every) > 4 * min(every)
    for ax in axes[0]:
        if wide:
            ax.set_xscale("log")
        ax.xaxis.set_major_formatter(_plain_ms())
        ax.xaxis.set_minor_formatter(_plain_ms(minor=True))
    cdf_ax.set_xlabel("TTFT (ms)")
    cdf_ax.set_ylabel("fraction of requests")
    cdf_ax.set_title(f"{title}: CDF")
    cdf_ax.grid(True, which="both", alpha=0.3)
    cdf_ax.legend(fontsize=8, loc="lower right")
    if tail:
        ax = axes[0][1]
        ax.set_yscale("log")
        ax.set_xlabel("TTFT (ms)")
        ax.set_ylabel("fraction slower (1 - CDF)")
        ax.set_title(f"{title}: tail")
        for level, label in ((0.1, "p90"), (0.01, "p99"), (0.001, "p99.9")):
            ax.axhline(level, color="grey", linewidth=0.6, alpha=0.6)
            ax.text(ax.get_xlim()[0], level, f" {label}", fontsize=7, va="bottom", color="grey")
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_over_time(result: LoadResult, path: str | Path) -> Path:
    """TTFT and total latency of every request against its start time; errors marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ok = [s for s in result.samples if s.error is None]
    bad = [s for s in result.samples if s.error is not None]
    ax.scatter(
        [s.start_s for s in ok],
        [(s.total_s or 0) * 1000 for s in ok],
        s=6,
        alpha=0.5,
        label="total",
    )
    ax.scatter(
        [s.start_s for s in ok if s.ttft_s is not None],
        [s.ttft_s * 1000 for s in ok if s.ttft_s is not None],
        s=6,
        alpha=0.6,
        label="TTFT",
    )
    if bad:
        ax.scatter(
            [s.start_s for s in bad],
            [(s.total_s or 0) * 1000 for s in bad],
            s=14,
            marker="x",
            color="red",
            label=f"errors ({len(bad)})",
        )
    ax.set_yscale("log")
    ax.set_xlabel("request start (s since run start)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"{result.spec.model} @ {result.spec.base_url}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_plots(result: LoadResult, directory: str | Path) -> list[Path]:
    """ttft_cdf.png and latency_over_time.png in `directory` (created if needed)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ttft = [s.ttft_s * 1000 for s in result.samples if s.error is None and s.ttft_s is not None]
    return [
        plot_ttft_cdf({result.spec.model: ttft}, out / "ttft_cdf.png"),
        plot_over_time(result, out / "latency_over_time.png"),
    ]
