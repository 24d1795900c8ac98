"""Regression testing and the model matrix: canonical prompts per model version, with
latency, cost, drift and version-change flags against a stored baseline.

    race-gateway regress --suite suite.yaml --config gateway.yaml --markdown report.md

`main(argv)` is the command line (exit 0 clean, 1 regressions, 2 could not run);
`amain(argv)` is the same for callers already inside an event loop.
See docs/regress.md.
"""

from gateway.regress.baseline import (
    Baseline,
    BaselineEntry,
    BaselineError,
    FileBaselineStore,
    RedisBaselineStore,
)
from gateway.regress.checks import Output, ToolCall, output_hash, run_checks
from gateway.regress.cli import amain, build_parser, main
from gateway.regress.compare import FLAG_KINDS, Cell, Flag, Thresholds
from gateway.regress.drift import drift
from gateway.regress.runner import RunOptions, RunRecord, plan_jobs, run_suite_jobs
from gateway.regress.schema import validate
from gateway.regress.suite import Suite, SuiteError, load_suite, parse_suite

__all__ = [
    "FLAG_KINDS",
    "Baseline",
    "BaselineEntry",
    "BaselineError",
    "Cell",
    "FileBaselineStore",
    "Flag",
    "Output",
    "RedisBaselineStore",
    "RunOptions",
    "RunRecord",
    "Suite",
    "SuiteError",
    "Thresholds",
    "ToolCall",
    "amain",
    "build_parser",
    "drift",
    "load_suite",
    "main",
    "output_hash",
    "parse_suite",
    "plan_jobs",
    "run_checks",
    "run_suite_jobs",
    "validate",
]
