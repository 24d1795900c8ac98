"""`race-gateway regress`: run a suite through the gateway core and gate on the result.

Exit status: 0 clean, 1 regressions found (any flag not `--ignore`d), 2 could not
run (bad arguments, suite, gateway config or targets; baseline store unreadable;
no run got an answer).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import structlog

from gateway.config import ConfigError, load_config
from gateway.config.model import Config
from gateway.redislayer import RedisSettings
from gateway.regress.baseline import (
    DEFAULT_FILE,
    BaselineError,
    BaselineStore,
    FileBaselineStore,
    RedisBaselineStore,
)
from gateway.regress.charts import write_charts
from gateway.regress.compare import (
    FLAG_KINDS,
    Cell,
    Thresholds,
    build_cell,
    compare_cell,
    now_iso,
    update_baseline,
    version_changes,
)
from gateway.regress.report import (
    RegressResult,
    to_json,
    write_json,
    write_markdown,
)
from gateway.regress.runner import Job, RunOptions, RunRecord, TargetError, plan_jobs
from gateway.regress.runner import run_suite_jobs as _run_suite_jobs
from gateway.regress.suite import Suite, SuiteError, load_suite

EXIT_CLEAN, EXIT_REGRESSIONS, EXIT_ERROR = 0, 1, 2


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {number}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _fraction(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="race-gateway regress",
        description="Run canonical prompts on every target through the gateway core, compare "
        "with the baseline, and exit 0 (clean), 1 (regressions) or 2 (could not run).",
    )
    add = parser.add_argument
    add("--suite", required=True, metavar="FILE", help="suite YAML (prompts, checks, targets)")
    add("--config", metavar="FILE", help="gateway config YAML (default: the suite's `config:`)")
    add(
        "--baseline",
        metavar="FILE",
        help=f"baseline JSON file (default: {DEFAULT_FILE}, "
        "or Redis when the gateway config has state.backend: redis)",
    )
    add(
        "--update-baseline",
        action="store_true",
        help="accept this run: write every passing cell into the baseline",
    )
    add("--json", metavar="OUT", help="write the JSON report (- = stdout)")
    add("--markdown", metavar="OUT", help="write the Markdown report (- = stdout)")
    add("--charts", metavar="DIR", help="write ttft.png and cost.png into DIR (needs matplotlib)")
    add(
        "--concurrency", type=_positive_int, default=4, metavar="N", help="runs at once (default 4)"
    )
    add(
        "--repeat",
        type=_positive_int,
        default=1,
        metavar="N",
        help="runs per prompt and target; TTFT p50/p95 are over these (default 1)",
    )
    add(
        "--retries",
        type=_non_negative_int,
        default=2,
        metavar="N",
        help="retries of a run that failed with a retryable error (default 2)",
    )
    add(
        "--timeout",
        type=_positive_float,
        default=120.0,
        metavar="S",
        help="seconds for one complete answer (default 120)",
    )
    add(
        "--ttft-threshold",
        type=_fraction,
        metavar="F",
        help="flag TTFT p50/p95 worse by more than this fraction (default 0.2)",
    )
    add(
        "--ttft-min-ms",
        type=_fraction,
        metavar="MS",
        help="...and by more than this many ms (default 50)",
    )
    add(
        "--cost-threshold",
        type=_fraction,
        metavar="F",
        help="flag cost per run up by more than this fraction (default 0.2)",
    )
    add(
        "--drift-threshold",
        type=_fraction,
        metavar="F",
        help="flag output drift above this (0 = same words, 1 = nothing shared; default 0.3)",
    )
    add(
        "--ignore",
        action="append",
        default=[],
        choices=FLAG_KINDS,
        metavar="FLAG",
        help=f"report FLAG but do not fail on it (repeatable; one of {', '.join(FLAG_KINDS)})",
    )
    add("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    add(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="gateway log level on stderr (default warning)",
    )
    return parser


def _thresholds(suite: Suite, args: argparse.Namespace) -> Thresholds:
    values = dict(suite.thresholds)
    for key, given in (
        ("ttft", args.ttft_threshold),
        ("cost", args.cost_threshold),
        ("drift", args.drift_threshold),
        ("ttft_min_ms", args.ttft_min_ms),
    ):
        if given is not None:
            values[key] = given
    return replace(Thresholds(), **values)


def _store(args: argparse.Namespace, config: Config) -> BaselineStore:
    if args.baseline:
        return FileBaselineStore(args.baseline)
    state = config.state
    if state.backend == "redis":
        settings = RedisSettings.from_config(state)
        return RedisBaselineStore(state.url, state.prefix, state.cluster, settings=settings)
    return FileBaselineStore(DEFAULT_FILE)


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return EXIT_ERROR


def _parse(argv: Sequence[str] | None) -> argparse.Namespace | int:
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, message on stderr)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status. Sets up logging (stderr, `--log-level`)
    unless the caller already did."""
    args = _parse(argv)
    if isinstance(args, int):
        return args
    if not structlog.is_configured():
        from gateway.logs import configure_logging

        configure_logging("auto", args.log_level)
    try:
        import uvloop

        return uvloop.run(run(args))
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(run(args))


async def amain(argv: Sequence[str] | None = None) -> int:
    """`main` for callers already inside an event loop (tests, embedding); no logging set-up."""
    args = _parse(argv)
    return args if isinstance(args, int) else await run(args)


async def run(args: argparse.Namespace) -> int:
    """Load, run, compare, write the baseline and the reports; returns the exit status."""
    try:
        suite = await asyncio.to_thread(load_suite, args.suite)
    except SuiteError as exc:
        return _fail(f"suite {args.suite} is invalid:\n  " + "\n  ".join(exc.problems))
    config_path = args.config or suite.config
    if not config_path:
        return _fail("no gateway config: pass --config FILE (or set `config:` in the suite)")
    try:
        config = await asyncio.to_thread(load_config, config_path)
    except ConfigError as exc:
        return _fail(f"config {config_path} is invalid:\n  " + "\n  ".join(exc.problems))
    try:
        jobs = plan_jobs(suite, config, args.repeat)
    except TargetError as exc:
        return _fail(f"suite {args.suite}: unknown targets:\n  " + "\n  ".join(exc.problems))
    store = _store(args, config)
    try:
        baseline = await store.load()
    except BaselineError as exc:
        return _fail(f"baseline: {exc}")
    options = RunOptions(
        concurrency=args.concurrency,
        repeat=args.repeat,
        retries=args.retries,
        timeout_s=args.timeout,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    thresholds = _thresholds(suite, args)
    started_at, t0 = now_iso(), time.monotonic()
    try:
        records = await _run_suite_jobs(config, jobs, options)
    except Exception as exc:  # the gateway could not start (a provider plugin failed, ...)
        return _fail(f"could not run the gateway: {type(exc).__name__}: {exc}")
    cells = cells_of(jobs, records)
    ignore = frozenset(args.ignore)
    for cell in cells:
        compare_cell(
            cell, baseline.get(cell.target, cell.prompt) if baseline else None, thresholds, ignore
        )
    result = RegressResult(
        suite=args.suite,
        config=str(config_path),
        started_at=started_at,
        duration_s=time.monotonic() - t0,
        options=options,
        thresholds=thresholds,
        ignore=ignore,
        prompts=list(dict.fromkeys(job.prompt.id for job in jobs)),
        targets=list(dict.fromkeys(job.target.name for job in jobs)),
        cells=cells,
        baseline_location=store.location,
        baseline_existed=baseline is not None,
        version_changes=version_changes(baseline, cells),
    )
    if all(not r.ok for r in records):
        first = next((r.error for r in records if r.error), "no runs")
        result.problems.append(f"nothing reachable: every run failed (first: {first})")
        result.exit_code = EXIT_ERROR
    else:
        result.exit_code = EXIT_REGRESSIONS if any(c.regressions for c in cells) else EXIT_CLEAN
        updated, written = update_baseline(baseline, cells, accept=args.update_baseline)
        if written:
            try:
                await store.save(updated)
                result.baseline_written = written
            except BaselineError as exc:
                result.problems.append(f"baseline not written: {exc}")
                result.exit_code = EXIT_ERROR
    if not await _write_reports(args, result):
        return EXIT_ERROR
    return result.exit_code


def cells_of(jobs: Sequence[Job], records: Sequence[RunRecord]) -> list[Cell]:
    grouped: dict[tuple[str, str], list[RunRecord]] = {}
    prompts = {}
    for job, record in zip(jobs, records, strict=True):
        grouped.setdefault((job.prompt.id, job.target.name), []).append(record)
        prompts[job.prompt.id] = job.prompt
    return [build_cell(prompts[p], t, runs) for (p, t), runs in grouped.items()]


async def _write_reports(args: argparse.Namespace, result: RegressResult) -> bool:
    """Charts, JSON, Markdown, then the summary; False when a report could not be written."""
    report = to_json(result)
    charts: list[Path] = []
    ok = True
    if args.charts:
        try:
            charts = await asyncio.to_thread(write_charts, report, args.charts)
        except ImportError:
            print(
                "charts skipped: they need matplotlib (pip install 'race-gateway[bench]')",
                file=sys.stderr,
            )
        except OSError as exc:
            print(f"cannot write charts into {args.charts}: {exc}", file=sys.stderr)
            ok = False
    for path, write, data in (
        (args.json, write_json, (report,)),
        (args.markdown, write_markdown, (report, charts)),
    ):
        if path:
            try:
                await asyncio.to_thread(write, path, *data)
            except OSError as exc:
                print(f"cannot write report {path}: {exc}", file=sys.stderr)
                ok = False
    to_stdout = "-" in (args.json, args.markdown)
    print(summary_text(result), file=sys.stderr if to_stdout else sys.stdout)
    return ok


def summary_text(result: RegressResult) -> str:
    cells = result.cells
    passed = sum(1 for c in cells if c.passed)
    runs = sum(len(c.runs) for c in cells)
    lines = [
        f"regress {result.suite}: {len(cells)} cells ({len(result.prompts)} prompts,"
        f" {len(result.targets)} targets) x {result.options.repeat} repeats = {runs} runs"
        f" in {result.duration_s:.1f} s; {passed}/{len(cells)} cells passed"
    ]
    for cell in cells:
        for flag in cell.flags:
            note = " (ignored)" if flag.ignored else ""
            lines.append(f"  {flag.kind}{note}: {cell.prompt} @ {cell.target}: {flag.message}")
    lines.extend(f"  {problem}" for problem in result.problems)
    written = (
        f"{result.baseline_written} entries written"
        if result.baseline_written
        else ("unchanged" if result.baseline_existed else "not written")
    )
    lines.append(f"baseline: {result.baseline_location} ({written})")
    status = {0: "clean", 1: "regressions found", 2: "could not run"}[result.exit_code]
    lines.append(f"status: {status} (exit {result.exit_code})")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
