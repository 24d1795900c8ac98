"""Regressions that run themselves: when a deployment's upstream reports a new model
version, run the configured suite against that deployment in the background, record the
report, and apply the policy (`auto_regress` in the config; docs/catalogue.md).

- Trigger: the `VersionTracker` sink tells us (deployment, old, new) on the event loop.
- Bounds: one run at a time per instance, at most one per deployment per
  `min_interval_s`, and one per (deployment, version) across instances (a lease in the
  state backend, see lease.py). Runs go through the gateway's own pipeline under the
  `regress` key, so their spend is recorded like any request's, and counted apart.
- Report: the same JSON/Markdown/PNG files `race-gateway regress` writes (under
  `reports_dir/<deployment>/<version>/`), and the last report per deployment in memory
  for `GET /admin/regressions`.
- Policy: `alert` logs a warning and counts the result; `quarantine` also takes the
  deployment out of races (routing/quarantine.py) until a later run passes or an admin
  releases it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from gateway.config.model import AutoRegressConfig
from gateway.regress.baseline import (
    DEFAULT_FILE,
    BaselineError,
    BaselineStore,
    FileBaselineStore,
    RedisBaselineStore,
)
from gateway.regress.cli import EXIT_CLEAN, EXIT_ERROR, EXIT_REGRESSIONS, cells_of
from gateway.regress.compare import Thresholds, compare_cell, now_iso, update_baseline
from gateway.regress.compare import version_changes as changes_of
from gateway.regress.lease import Lease, MemoryLease, RedisLease
from gateway.regress.report import (
    RegressResult,
    to_json,
    to_markdown,
    write_json,
    write_markdown,
)
from gateway.regress.runner import Job, RunOptions, resolve_target, run_jobs
from gateway.regress.suite import Suite, SuiteError, load_suite
from gateway.routing.table import RouteTable
from gateway.runtime import Gateway

log = structlog.get_logger("gateway.regress")
IGNORED = frozenset({"model_version"})  # the change that triggered the run is no regression
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def attach(gateway: Gateway) -> AutoRegress | None:
    """Automatic regressions for a gateway whose config has `auto_regress` (the `serve`
    entry point calls this). An invalid suite is logged and leaves them off: serving
    traffic matters more (check-config fails on it)."""
    cfg = gateway.config.auto_regress
    if cfg is None:
        return None
    try:
        auto = AutoRegress(gateway, cfg)
    except (SuiteError, OSError) as exc:
        log.error("auto_regress_disabled", suite=cfg.suite, error=str(exc))
        return None
    gateway.services.append(auto)
    gateway.regressions = auto
    return auto


def baseline_store(gateway: Gateway, cfg: AutoRegressConfig) -> BaselineStore:
    """The same baseline `race-gateway regress` uses with this gateway config."""
    if cfg.baseline:
        return FileBaselineStore(cfg.baseline)
    state = gateway.config.state
    if state.backend == "redis":
        return RedisBaselineStore(state.url, state.prefix, state.cluster)
    return FileBaselineStore(DEFAULT_FILE)


def lease_for(gateway: Gateway) -> Lease:
    state, layer = gateway.config.state, gateway.state.redis_layer
    return RedisLease(layer.client, state.prefix) if layer is not None else MemoryLease()


class AutoRegress:
    def __init__(
        self,
        gateway: Gateway,
        cfg: AutoRegressConfig,
        *,
        suite: Suite | None = None,
        lease: Lease | None = None,
        store: BaselineStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gateway = gateway
        self.cfg = cfg
        self.suite = suite if suite is not None else load_suite(cfg.suite)  # SuiteError
        self.lease = lease if lease is not None else lease_for(gateway)
        self.store = store if store is not None else baseline_store(gateway, cfg)
        self.clock = clock
        self.reports: dict[str, dict[str, Any]] = {}  # deployment -> its last run
        self._last_start: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._one_at_a_time = asyncio.Semaphore(1)
        self.options = RunOptions(
            concurrency=cfg.concurrency, repeat=cfg.repeat, timeout_s=cfg.timeout_s
        )
        gateway.version_tracker.listeners.append(self.on_version_change)

    @property
    def policy(self) -> str:
        return self.cfg.policy

    @property
    def suite_path(self) -> str:
        return self.cfg.suite

    def runs(self) -> dict[str, dict[str, Any]]:
        """deployment -> its last run (the admin view)."""
        return self.reports

    async def start(self) -> None:
        return None  # runs start on version changes

    # -- trigger ----------------------------------------------------------------

    def on_version_change(self, deployment: str, old: str, new: str) -> None:
        """Called by the version tracker on the loop; starts a background run (or not)."""
        dep = self.gateway.config.deployments.get(deployment)
        if dep is None or dep.type != "chat":  # suites are chat prompts
            return
        now = self.clock()
        last = self._last_start.get(deployment)
        if last is not None and now - last < self.cfg.min_interval_s:
            log.info("auto_regress_rate_limited", deployment=deployment, version=new)
            self._count(deployment, "rate_limited")
            return
        self._last_start[deployment] = now
        task = asyncio.create_task(self.run(deployment, new, old), name=f"regress:{deployment}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Until every background run started so far has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.lease.close()

    # -- one run ----------------------------------------------------------------

    async def run(self, deployment: str, version: str, old: str | None = None) -> None:
        """Run the suite on `deployment` for `version` unless another instance holds the
        lease; record the report and apply the policy. Never raises (but cancellation)."""
        if not await self.lease.acquire(f"{deployment}:{version}", self.cfg.lease_s):
            log.info("auto_regress_leased_elsewhere", deployment=deployment, version=version)
            self._count(deployment, "leased_elsewhere")
            return
        async with self._one_at_a_time:
            try:
                await self._run(deployment, version, old)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a background run must never take the gateway down
                log.exception("auto_regress_failed", deployment=deployment, version=version)
                self._count(deployment, "error")
                self.reports[deployment] = {
                    "deployment": deployment,
                    "version": version,
                    "previous_version": old,
                    "result": "error",
                    "error": f"{type(exc).__name__}: {exc}",
                }

    def _jobs(self, deployment: str) -> list[Job]:
        target = resolve_target(self.gateway.config, RouteTable(self.gateway.config), deployment)
        assert not isinstance(target, str)  # a configured deployment always resolves
        names = (deployment, f"deployment:{deployment}")
        prompts = [
            p for p in self.suite.prompts if p.targets is None or any(n in p.targets for n in names)
        ]
        return [Job(p, target, r) for r in range(self.cfg.repeat) for p in prompts]

    async def _run(self, deployment: str, version: str, old: str | None) -> None:
        log.info("auto_regress_started", deployment=deployment, version=version, previous=old)
        jobs = self._jobs(deployment)
        started_at, t0 = now_iso(), time.monotonic()
        try:
            baseline = await self.store.load()
        except BaselineError as exc:
            log.warning("auto_regress_baseline_unreadable", error=str(exc))
            baseline = None
        records = await run_jobs(self.gateway, jobs, self.options)
        cells = cells_of(jobs, records)
        thresholds = replace(Thresholds(), **dict(self.suite.thresholds))
        for cell in cells:
            entry = baseline.get(cell.target, cell.prompt) if baseline else None
            compare_cell(cell, entry, thresholds, IGNORED)
        result = RegressResult(
            suite=self.cfg.suite,
            config="(running gateway)",
            started_at=started_at,
            duration_s=time.monotonic() - t0,
            options=self.options,
            thresholds=thresholds,
            ignore=IGNORED,
            prompts=list(dict.fromkeys(j.prompt.id for j in jobs)),
            targets=[deployment],
            cells=cells,
            baseline_location=self.store.location,
            baseline_existed=baseline is not None,
            version_changes=changes_of(baseline, cells),
        )
        if not records or all(not r.ok for r in records):
            result.exit_code = EXIT_ERROR
            result.problems.append("every run failed" if records else "no prompt for it")
        else:
            regressed = any(c.regressions for c in cells)
            result.exit_code = EXIT_REGRESSIONS if regressed else EXIT_CLEAN
            updated, written = update_baseline(baseline, cells, accept=False)
            if written:
                try:
                    await self.store.save(updated)
                    result.baseline_written = written
                except BaselineError as exc:
                    result.problems.append(f"baseline not written: {exc}")
        cost = sum(r.cost_usd for r in records)
        self.gateway.metrics.auto_regress_cost.labels(deployment).inc(cost)
        report = to_json(result)
        files = await self._write(deployment, version, report)
        outcome = {EXIT_CLEAN: "passed", EXIT_REGRESSIONS: "regressions"}.get(
            result.exit_code, "error"
        )
        action = await self._apply_policy(deployment, version, outcome)
        self._count(deployment, outcome)
        flags = [f"{f.kind}: {c.prompt}: {f.message}" for c in cells for f in c.regressions]
        self.reports[deployment] = {
            "deployment": deployment,
            "version": version,
            "previous_version": old,
            "result": outcome,
            "action": action,
            "flags": flags,
            "cost_usd": round(cost, 8),
            "files": [str(f) for f in files],
            "report": report,
            "markdown": to_markdown(report),
        }
        level = log.info if outcome == "passed" else log.warning
        level(
            "auto_regress_finished",
            deployment=deployment,
            version=version,
            result=outcome,
            action=action,
            flags=len(flags),
            cost_usd=round(cost, 6),
        )

    async def _apply_policy(self, deployment: str, version: str, outcome: str) -> str | None:
        quarantine = self.gateway.quarantine
        if outcome == "passed":
            if deployment in quarantine and await quarantine.release(deployment):
                return "released"
            return None
        if outcome == "regressions" and self.cfg.policy == "quarantine":
            await quarantine.add(
                deployment, {"version": version, "since": now_iso(), "by": "auto_regress"}
            )
            return "quarantined"
        return "alerted"

    async def _write(self, deployment: str, version: str, report: dict[str, Any]) -> list[Path]:
        if self.cfg.reports_dir is None:
            return []
        folder = (
            Path(self.cfg.reports_dir) / _UNSAFE.sub("_", deployment) / _UNSAFE.sub("_", version)
        )
        files = [folder / "report.json", folder / "report.md"]
        try:
            charts = await asyncio.to_thread(_charts, report, folder)
            await asyncio.to_thread(write_json, files[0], report)
            await asyncio.to_thread(write_markdown, files[1], report, charts)
        except OSError as exc:
            log.warning("auto_regress_report_not_written", folder=str(folder), error=str(exc))
            return []
        return [*files, *charts]

    def _count(self, deployment: str, result: str) -> None:
        self.gateway.metrics.auto_regress_runs.labels(deployment, result).inc()


def _charts(report: dict[str, Any], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        from gateway.regress.charts import write_charts

        return write_charts(report, folder)
    except ImportError:  # matplotlib is the optional `bench` extra
        return []
