"""Runs -> cells (one per prompt x target), compared with the baseline into flags.

Flags (each one is a regression unless ignored with `--ignore KIND`):

- `error`: a run failed after its retries (no answer, or an error mid-stream).
- `check_regressed`: a check that passed in the baseline fails now.
- `check_failed`: a check fails that has no passing baseline (new prompt, new check).
- `ttft_p50` / `ttft_p95`: the cell's TTFT quantile over its repeats is worse than the
  baseline's by more than the `ttft` threshold (relative) *and* by more than
  `ttft_min_ms` (absolute), so a 4 ms wobble on a 10 ms answer is not a regression.
- `cost`: mean cost per run up by more than the `cost` threshold (relative); from 0 to
  anything above 0 counts too.
- `drift`: the smallest drift (see drift.py) of the cell's answers from the baseline's
  sample exceeds the `drift` threshold.
- `model_version`: the upstream reports another model version than the baseline's, for
  the same deployment.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.loadtest.stats import percentile
from gateway.regress.baseline import Baseline, BaselineEntry
from gateway.regress.checks import CheckTally
from gateway.regress.drift import SAMPLE_CHARS, drift
from gateway.regress.runner import RunRecord
from gateway.regress.suite import PromptSpec
from gateway.value_class import value_class

FLAG_KINDS = (
    "error",
    "check_regressed",
    "check_failed",
    "ttft_p50",
    "ttft_p95",
    "cost",
    "drift",
    "model_version",
)


@value_class
class Thresholds:
    ttft: float = 0.2  # relative increase of TTFT p50/p95
    cost: float = 0.2  # relative increase of cost per run
    drift: float = 0.3  # 1 - word-level similarity to the baseline sample
    ttft_min_ms: float = 50.0  # absolute TTFT increase below which no flag is raised


@value_class
class Flag:
    kind: str
    message: str
    ignored: bool = False


@dataclass(slots=True)
class Cell:
    prompt: str
    target: str
    runs: list[RunRecord]
    checks: list[CheckTally]
    deployment: str | None = None  # the deployment that answered most often
    deployments: list[str] = field(default_factory=list)
    model_version: str | None = None
    fingerprint: str | None = None
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    cost_usd: float | None = None  # mean per successful run
    prompt_tokens: float | None = None
    completion_tokens: float | None = None
    output_hash: str | None = None
    output_sample: str | None = None
    errors: list[str] = field(default_factory=list)
    drift: float | None = None
    baseline: BaselineEntry | None = None
    flags: list[Flag] = field(default_factory=list)

    @property
    def ok_runs(self) -> list[RunRecord]:
        return [r for r in self.runs if r.ok]

    @property
    def passed(self) -> bool:
        """Every run answered and every check passed on every run."""
        return not self.errors and all(t.passed for t in self.checks)

    @property
    def regressions(self) -> list[Flag]:
        return [f for f in self.flags if not f.ignored]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def build_cell(prompt: PromptSpec, target: str, runs: list[RunRecord]) -> Cell:
    runs = sorted(runs, key=lambda r: r.repeat)
    tallies = {c.name: CheckTally(c.name, c.kind) for c in prompt.checks}
    cell = Cell(prompt.id, target, runs, list(tallies.values()))
    ok = cell.ok_runs
    for run in ok:
        for result in run.checks:
            tallies[result.name].add(result)
    cell.errors = [f"run {r.repeat + 1}: {r.error}" for r in runs if not r.ok]
    winners = Counter(r.deployment for r in runs if r.deployment)
    cell.deployments = sorted(winners)
    if winners:
        cell.deployment = winners.most_common(1)[0][0]
        versions = Counter(
            r.model_version for r in runs if r.deployment == cell.deployment and r.model_version
        )
        cell.model_version = versions.most_common(1)[0][0] if versions else None
        cell.fingerprint = next((r.fingerprint for r in runs if r.fingerprint), None)
    ttfts = sorted(r.ttft_ms for r in ok if r.ttft_ms is not None)
    cell.ttft_p50_ms, cell.ttft_p95_ms = percentile(ttfts, 50), percentile(ttfts, 95)
    cell.cost_usd = _mean([r.cost_usd for r in ok])
    cell.prompt_tokens = _mean([float(r.prompt_tokens) for r in ok])
    cell.completion_tokens = _mean([float(r.completion_tokens) for r in ok])
    first = next((r for r in ok if r.output is not None), None)
    if first is not None and first.output is not None:
        cell.output_hash = first.output_hash
        cell.output_sample = first.output.rendered()[:SAMPLE_CHARS]
    return cell


def _worse(new: float | None, old: float | None, threshold: float) -> float | None:
    """Relative increase when it exceeds the threshold, else None."""
    if new is None or old is None:
        return None
    if old <= 0:
        return float("inf") if new > 0 else None
    rel = (new - old) / old
    return rel if rel > threshold else None


def _pct(rel: float) -> str:
    return "new" if rel == float("inf") else f"+{rel:.0%}"


def compare_cell(
    cell: Cell, entry: BaselineEntry | None, th: Thresholds, ignore: frozenset[str]
) -> None:
    """Fill `cell.flags` (and `cell.baseline`, `cell.drift`)."""
    cell.baseline = entry
    flags: list[tuple[str, str]] = []
    if cell.errors:
        flags.append(
            ("error", f"{len(cell.errors)}/{len(cell.runs)} runs failed: {cell.errors[0]}")
        )
    for tally in cell.checks:
        if tally.runs == 0 or tally.passed:
            continue
        regressed = entry is not None and entry.checks.get(tally.name) is True
        kind = "check_regressed" if regressed else "check_failed"
        what = "passed in the baseline, now fails" if regressed else "fails"
        flags.append(
            (
                kind,
                f"{tally.name} {what} ({tally.runs - tally.passes}/{tally.runs}): {tally.detail}",
            )
        )
    if entry is not None and cell.ok_runs:
        same_deployment = entry.deployment is None or entry.deployment == cell.deployment
        if (
            same_deployment
            and cell.model_version
            and entry.model_version
            and cell.model_version != entry.model_version
        ):
            flags.append(
                (
                    "model_version",
                    f"{cell.deployment}: {entry.model_version} -> {cell.model_version}",
                )
            )
        for name, new, old in (
            ("ttft_p50", cell.ttft_p50_ms, entry.ttft_p50_ms),
            ("ttft_p95", cell.ttft_p95_ms, entry.ttft_p95_ms),
        ):
            rel = _worse(new, old, th.ttft)
            if rel is not None and new is not None and new - (old or 0.0) > th.ttft_min_ms:
                flags.append((name, f"TTFT {name[5:]} {old:.0f} -> {new:.0f} ms ({_pct(rel)})"))
        rel = _worse(cell.cost_usd, entry.cost_usd, th.cost)
        if rel is not None:
            flags.append(
                (
                    "cost",
                    f"cost/run ${entry.cost_usd or 0:.6f} -> ${cell.cost_usd:.6f} ({_pct(rel)})",
                )
            )
        if entry.output_sample is not None:
            answers = [r.output.rendered() for r in cell.ok_runs if r.output is not None]
            if answers:
                cell.drift = min(drift(a, entry.output_sample) for a in answers)
                if cell.drift > th.drift:
                    flags.append(
                        ("drift", f"output drift {cell.drift:.2f} > {th.drift:g} from the baseline")
                    )
    cell.flags = [Flag(kind, message, kind in ignore) for kind, message in flags]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_of(cell: Cell, now: str) -> BaselineEntry:
    return BaselineEntry(
        deployment=cell.deployment,
        model_version=cell.model_version,
        checks={t.name: t.passed for t in cell.checks},
        ttft_p50_ms=cell.ttft_p50_ms,
        ttft_p95_ms=cell.ttft_p95_ms,
        cost_usd=cell.cost_usd,
        prompt_tokens=cell.prompt_tokens,
        completion_tokens=cell.completion_tokens,
        output_hash=cell.output_hash,
        output_sample=cell.output_sample,
        runs=len(cell.ok_runs),
        updated_at=now,
    )


def update_baseline(
    baseline: Baseline | None, cells: list[Cell], accept: bool, now: str | None = None
) -> tuple[Baseline, int]:
    """Write passing cells: those without an entry, or all of them when `accept`
    (`--update-baseline`). Returns the baseline and how many entries were written."""
    now = now or now_iso()
    result = baseline if baseline is not None else Baseline()
    written = 0
    for cell in cells:
        if not cell.passed or not cell.ok_runs:
            continue
        if accept or result.get(cell.target, cell.prompt) is None:
            result.put(cell.target, cell.prompt, entry_of(cell, now))
            written += 1
            if cell.deployment and cell.model_version:
                current = result.version_of(cell.deployment)
                if accept or current is None:
                    result.note_version(cell.deployment, cell.model_version, now)
    if written:
        result.updated_at = now
    return result, written


@value_class
class VersionChange:
    deployment: str
    baseline: str
    current: str


def version_changes(baseline: Baseline | None, cells: list[Cell]) -> list[VersionChange]:
    """Per deployment: the versions reported in this run that differ from the baseline's."""
    if baseline is None:
        return []
    seen: dict[str, str] = {}
    for cell in cells:
        for run in cell.ok_runs:
            if run.deployment and run.model_version:
                seen.setdefault(run.deployment, run.model_version)
    changes = []
    for deployment, current in sorted(seen.items()):
        old = baseline.version_of(deployment)
        if old is not None and old != current:
            changes.append(VersionChange(deployment, old, current))
    return changes
