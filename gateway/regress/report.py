"""The matrix report: JSON (for machines), Markdown (for a CI summary) and PNG charts.

The Markdown is rendered from the JSON document, so both always agree; charts.py draws
the PNGs from it too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import orjson

from gateway.regress.compare import Cell, Thresholds, VersionChange
from gateway.regress.runner import RunOptions, RunRecord

REPORT_FORMAT = "race-gateway-regress-report/1"
STATUS_TEXT = {
    "clean": "✅ clean",
    "regressions": "❌ regressions found",
    "error": "⚠️ could not run",
}


@dataclass(slots=True)
class RegressResult:
    suite: str
    config: str
    started_at: str
    duration_s: float
    options: RunOptions
    thresholds: Thresholds
    ignore: frozenset[str]
    prompts: list[str]
    targets: list[str]
    cells: list[Cell]
    baseline_location: str
    baseline_existed: bool
    baseline_written: int = 0
    version_changes: list[VersionChange] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why it could not run (exit 2)
    exit_code: int = 0

    @property
    def status(self) -> str:
        return {0: "clean", 1: "regressions"}.get(self.exit_code, "error")


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "repeat": run.repeat,
        "deployment": run.deployment,
        "model_version": run.model_version,
        "fingerprint": run.fingerprint,
        "ttft_ms": _round(run.ttft_ms),
        "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.completion_tokens,
        "cost_usd": run.cost_usd,
        "finish_reason": run.finish_reason,
        "output_hash": run.output_hash,
        "checks": {c.name: c.passed for c in run.checks},
        "error": run.error,
        "tries": run.tries,
        "duration_ms": _round(run.duration_ms),
    }


def _cell_json(cell: Cell) -> dict[str, Any]:
    base = cell.baseline
    return {
        "prompt": cell.prompt,
        "target": cell.target,
        "passed": cell.passed,
        "deployment": cell.deployment,
        "deployments": cell.deployments,
        "model_version": cell.model_version,
        "fingerprint": cell.fingerprint,
        "checks": [
            {
                "name": t.name,
                "kind": t.kind,
                "passed": t.passed,
                "passes": t.passes,
                "runs": t.runs,
                "detail": t.detail or None,
            }
            for t in cell.checks
        ],
        "ttft_p50_ms": _round(cell.ttft_p50_ms),
        "ttft_p95_ms": _round(cell.ttft_p95_ms),
        "cost_usd": cell.cost_usd,
        "prompt_tokens": cell.prompt_tokens,
        "completion_tokens": cell.completion_tokens,
        "output_hash": cell.output_hash,
        "output_sample": cell.output_sample,
        "drift": cell.drift,
        "errors": cell.errors,
        "flags": [asdict(f) for f in cell.flags],
        "baseline": None
        if base is None
        else {
            "deployment": base.deployment,
            "model_version": base.model_version,
            "ttft_p50_ms": _round(base.ttft_p50_ms),
            "ttft_p95_ms": _round(base.ttft_p95_ms),
            "cost_usd": base.cost_usd,
            "output_hash": base.output_hash,
            "updated_at": base.updated_at,
        },
        "runs": [_run_json(r) for r in cell.runs],
    }


def to_json(result: RegressResult) -> dict[str, Any]:
    cells = result.cells
    flag_counts: dict[str, int] = {}
    for cell in cells:
        for flag in cell.regressions:
            flag_counts[flag.kind] = flag_counts.get(flag.kind, 0) + 1
    options = result.options
    return {
        "format": REPORT_FORMAT,
        "status": result.status,
        "exit_code": result.exit_code,
        "problems": result.problems,
        "suite": result.suite,
        "config": result.config,
        "started_at": result.started_at,
        "duration_s": round(result.duration_s, 3),
        "options": {
            "concurrency": options.concurrency,
            "repeat": options.repeat,
            "retries": options.retries,
            "timeout_s": options.timeout_s,
        },
        "thresholds": asdict(result.thresholds),
        "ignored_flags": sorted(result.ignore),
        "baseline": {
            "location": result.baseline_location,
            "existed": result.baseline_existed,
            "entries_written": result.baseline_written,
        },
        "summary": {
            "cells": len(cells),
            "passed": sum(1 for c in cells if c.passed),
            "failed": sum(1 for c in cells if not c.passed),
            "runs": sum(len(c.runs) for c in cells),
            "failed_runs": sum(len(c.errors) for c in cells),
            "regressions": sum(len(c.regressions) for c in cells),
            "flags": flag_counts,
        },
        "prompts": result.prompts,
        "targets": result.targets,
        "version_changes": [asdict(v) for v in result.version_changes],
        "matrix": [_cell_json(c) for c in cells],
    }


def write_json(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    data = orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n"
    if str(path) == "-":
        sys.stdout.write(data.decode())
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)


# -- Markdown -----------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:.4f}" if value >= 0.01 else f"${value:.6f}"


def _esc(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _mark(cell: dict[str, Any]) -> str:
    flags = [f for f in cell["flags"] if not f["ignored"]]
    if cell["errors"] or not cell["passed"]:
        return "❌"
    return "⚠️" if flags else "✅"


def _cell_text(cell: dict[str, Any]) -> str:
    parts = [_mark(cell)]
    if cell["ttft_p50_ms"] is not None:
        parts.append(_ms(cell["ttft_p50_ms"]))
    if cell["cost_usd"] is not None:
        parts.append(_usd(cell["cost_usd"]))
    kinds = sorted({f["kind"] for f in cell["flags"] if not f["ignored"]})
    if kinds:
        parts.append(", ".join(kinds))
    if cell["baseline"] is None:
        parts.append("new")
    return f"{parts[0]} " + " · ".join(parts[1:]) if len(parts) > 1 else parts[0]


def to_markdown(
    report: dict[str, Any], charts: Sequence[Path] = (), base: str | None = None
) -> str:
    summary = report["summary"]
    lines = [
        f"# Regression report: {_esc(report['suite'])}",
        "",
        f"**{STATUS_TEXT.get(report['status'], report['status'])}** (exit {report['exit_code']})"
        f" · {summary['passed']}/{summary['cells']} cells passed"
        f" · {summary['regressions']} flag(s)"
        f" · {summary['runs']} runs in {report['duration_s']:.1f} s"
        f" · started {report['started_at']}",
        "",
    ]
    baseline = report["baseline"]
    state = "found" if baseline["existed"] else "none yet"
    lines.append(
        f"Baseline: {_esc(baseline['location'])} ({state}; "
        f"{baseline['entries_written']} entries written). Gateway config: "
        f"{_esc(report['config'])}."
    )
    th = report["thresholds"]
    lines.append(
        f"Thresholds: TTFT +{th['ttft']:.0%} (and +{th['ttft_min_ms']:g} ms), "
        f"cost +{th['cost']:.0%}, drift {th['drift']:g}."
        + (
            f" Ignored flags: {', '.join(report['ignored_flags'])}."
            if report["ignored_flags"]
            else ""
        )
    )
    lines.append("")
    if report["problems"]:
        lines += ["## Problems", ""] + [f"- {_esc(p)}" for p in report["problems"]] + [""]
    matrix = {(c["prompt"], c["target"]): c for c in report["matrix"]}
    targets = report["targets"]
    if matrix:
        lines += [
            "## Matrix",
            "",
            "✅ passed · ⚠️ passed with flags · ❌ failed; TTFT p50 · cost per run · flags",
            "",
        ]
        lines.append("| prompt | " + " | ".join(_esc(t) for t in targets) + " |")
        lines.append("|---" * (len(targets) + 1) + "|")
        for prompt in report["prompts"]:
            row = [_esc(prompt)]
            for target in targets:
                cell = matrix.get((prompt, target))
                row.append(_esc(_cell_text(cell)) if cell else "-")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    flagged = [(c, f) for c in report["matrix"] for f in c["flags"]]
    if flagged:
        lines += ["## Flags", "", "| prompt | target | flag | detail |", "|---|---|---|---|"]
        for cell, flag in flagged:
            kind = flag["kind"] + (" (ignored)" if flag["ignored"] else "")
            lines.append(
                f"| {_esc(cell['prompt'])} | {_esc(cell['target'])} | {kind} | "
                f"{_esc(flag['message'])} |"
            )
        lines.append("")
    if report["version_changes"]:
        lines += ["## Model version changes", ""]
        for change in report["version_changes"]:
            lines.append(
                f"- `{_esc(change['deployment'])}`: `{_esc(change['baseline'])}` → "
                f"`{_esc(change['current'])}`"
            )
        lines.append("")
    if matrix:
        lines += _target_table(report)
    if charts:
        lines += ["## Charts", ""]
        for chart in charts:
            link = os.path.relpath(os.path.abspath(chart), base) if base is not None else str(chart)
            lines.append(f"![{chart.stem}]({Path(link).as_posix()})")
        lines.append("")
    return "\n".join(lines)


def _target_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "## Targets",
        "",
        "| target | deployment | model version | passed | TTFT p50 (baseline) "
        "| cost per suite run (baseline) |",
        "|---|---|---|---|---|---|",
    ]
    for target, stats in target_stats(report["matrix"]).items():
        lines.append(
            f"| {_esc(target)} | {_esc(', '.join(stats['deployments']) or '-')} "
            f"| {_esc(', '.join(stats['versions']) or '-')} "
            f"| {stats['passed']}/{stats['cells']} "
            f"| {_ms(stats['ttft_p50_ms'])} ({_ms(stats['baseline_ttft_p50_ms'])}) "
            f"| {_usd(stats['cost_usd'])} ({_usd(stats['baseline_cost_usd'])}) |"
        )
    lines.append("")
    return lines


def target_stats(matrix: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per target: median of the prompts' TTFT p50/p95 and the summed cost per run, now and
    in the baseline (cost over the prompts that have a baseline on both sides)."""
    out: dict[str, dict[str, Any]] = {}
    for target in dict.fromkeys(c["target"] for c in matrix):
        cells = [c for c in matrix if c["target"] == target]
        both = [c for c in cells if c["baseline"] and c["cost_usd"] is not None]

        def med(values: list[float | None]) -> float | None:
            present = [v for v in values if v is not None]
            return median(present) if present else None

        out[target] = {
            "cells": len(cells),
            "passed": sum(1 for c in cells if c["passed"]),
            "deployments": sorted({d for c in cells for d in c["deployments"]}),
            "versions": sorted({c["model_version"] for c in cells if c["model_version"]}),
            "ttft_p50_ms": med([c["ttft_p50_ms"] for c in cells]),
            "ttft_p95_ms": med([c["ttft_p95_ms"] for c in cells]),
            "baseline_ttft_p50_ms": med([c["baseline"]["ttft_p50_ms"] for c in both]),
            "baseline_ttft_p95_ms": med([c["baseline"]["ttft_p95_ms"] for c in both]),
            "cost_usd": sum(c["cost_usd"] for c in cells if c["cost_usd"] is not None)
            if any(c["cost_usd"] is not None for c in cells)
            else None,
            "baseline_cost_usd": sum(c["baseline"]["cost_usd"] or 0.0 for c in both)
            if both
            else None,
        }
    return out


def write_markdown(
    path: str | os.PathLike[str], report: dict[str, Any], charts: Sequence[Path] = ()
) -> None:
    """Render and write the Markdown report; chart links are relative to its directory."""
    if str(path) == "-":
        sys.stdout.write(to_markdown(report, charts) + "\n")
        return
    text = to_markdown(report, charts, os.path.dirname(os.path.abspath(path)))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text + "\n", encoding="utf-8")
