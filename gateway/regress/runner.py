"""Run a suite in process through the gateway core, the way the server serves a request.

For each (prompt, target, repeat) the runner builds a `ChatRequest` and opens it
through the request pipeline on the target's route (a deployment target is a
one-candidate fallback route, like a client naming the deployment), waits for the
winner, assembles the answer with `ResponseAssembler`, and closes the answer so the
request is recorded like any other (health, latency profiles, metrics, spend,
version tracking, access log). Runs are bounded by a semaphore; a run that fails with a retryable
upstream error is retried with a small exponential backoff, other failures are
recorded as they are.
"""

from __future__ import annotations

import asyncio
import copy
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.model import Config
from gateway.config.validate import suggest
from gateway.pipeline import Caller
from gateway.regress.checks import CheckResult, Output, ToolCall, output_hash, run_checks
from gateway.regress.suite import PromptSpec, Suite
from gateway.rejection import Rejected
from gateway.request import ChatRequest
from gateway.routing.table import ResolvedRoute, RouteTable
from gateway.runtime import Gateway
from gateway.streaming.encode import ResponseAssembler
from gateway.streaming.plan import HEARTBEAT, AllFailed, Winner
from gateway.value_class import value_class


@value_class
class Target:
    name: str  # as the suite (or the default) names it; the baseline key
    kind: Literal["deployment", "route"]
    route: ResolvedRoute


@value_class
class Job:
    prompt: PromptSpec
    target: Target
    repeat: int


@dataclass(slots=True)
class RunRecord:
    """One run of one prompt on one target (after retries)."""

    prompt: str
    target: str
    repeat: int
    deployment: str | None = None
    model_version: str | None = None
    fingerprint: str | None = None
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    finish_reason: str | None = None
    output: Output | None = None
    output_hash: str | None = None
    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    error_status: int | None = None
    retryable: bool = False
    tries: int = 1
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


REGRESS_KEY = "regress"  # the key id regression runs are recorded (and budgeted) under


class TargetError(ValueError):
    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _deployment_route(config: Config, name: str) -> ResolvedRoute:
    """What a client gets when it names a deployment: that deployment alone, no racing."""
    return ResolvedRoute(
        name=name,
        strategy="fallback",
        deployments=(config.deployments[name],),
        k=1,
        hedge_delay_s=0.6,
        heartbeat_after_s=None,
        max_extra_load=0.0,
        min_extra_per_s=0.0,
        data_residency=None,
        direct=True,
    )


def resolve_target(config: Config, table: RouteTable, name: str) -> Target | str:
    """A Target, or the reason `name` names none. A bare name is looked up like a client's
    `model` (the config never gives a route and a deployment the same name); the optional
    `deployment:X` / `route:X` prefixes say which one is meant."""
    kind, sep, rest = name.partition(":")
    if sep and kind in ("deployment", "route"):
        if kind == "deployment":
            if rest in config.deployments:
                return Target(name, "deployment", _deployment_route(config, rest))
            return f"unknown deployment {rest!r}" + suggest(rest, config.deployments)
        route = table.get(rest) if rest in config.routes else None
        if route is not None:
            return Target(name, "route", route)
        return f"unknown route {rest!r}" + suggest(rest, config.routes)
    if name in config.routes:
        route = table.get(name)
        assert route is not None
        return Target(name, "route", route)
    if name in config.deployments:
        return Target(name, "deployment", _deployment_route(config, name))
    known = [*config.routes, *config.deployments]
    return f"unknown target {name!r}: not a route or deployment of the gateway config" + suggest(
        name, known
    )


def plan_jobs(suite: Suite, config: Config, repeat: int) -> list[Job]:
    """Every (prompt, target, repeat), repeats outermost so one cell's runs are spread out.
    Raises TargetError naming each unknown target by its suite path."""
    table = RouteTable(config)
    problems: list[str] = []
    per_prompt: list[tuple[PromptSpec, list[Target]]] = []
    for prompt in suite.prompts:
        if prompt.targets is not None:
            names, where = prompt.targets, f"{prompt.path}.targets"
        elif suite.targets is not None:
            names, where = suite.targets, "targets"
        else:
            names, where = tuple(config.deployments), "deployments"
        targets: list[Target] = []
        for i, name in enumerate(names):
            resolved = resolve_target(config, table, name)
            if isinstance(resolved, str):
                problem = f"{where}[{i}]: {resolved}"
                if problem not in problems:
                    problems.append(problem)
            elif all(t.name != resolved.name for t in targets):
                targets.append(resolved)
        per_prompt.append((prompt, targets))
    if problems:
        raise TargetError(problems)
    if not any(targets for _, targets in per_prompt):
        raise TargetError(["deployments: the gateway config has no deployments to run on"])
    return [
        Job(prompt, target, r)
        for r in range(repeat)
        for prompt, targets in per_prompt
        for target in targets
    ]


class Progress:
    """`[#####     ] 12/40 runs  2 failed  3s` on stderr, rewritten per finished run."""

    def __init__(self, total: int, enabled: bool, width: int = 30) -> None:
        self.total = total
        self.enabled = enabled
        self.width = width
        self.done = 0
        self.failed = 0
        self.t0 = time.monotonic()

    def tick(self, record: RunRecord) -> None:
        self.done += 1
        if not record.ok or any(not c.passed for c in record.checks):
            self.failed += 1
        if not self.enabled:
            return
        share = self.done / self.total if self.total else 1.0
        bar = "#" * int(share * self.width)
        elapsed = time.monotonic() - self.t0
        sys.stderr.write(
            f"\r[{bar:<{self.width}}] {self.done}/{self.total} runs"
            f"  {self.failed} failed  {elapsed:.0f}s "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            sys.stderr.write("\n")
            sys.stderr.flush()


@value_class
class RunOptions:
    concurrency: int = 4
    repeat: int = 1
    retries: int = 2
    backoff_s: float = 0.25
    timeout_s: float = 120.0
    progress: bool = False


async def run_jobs(
    gateway: Gateway,
    jobs: Sequence[Job],
    options: RunOptions,
    on_done: Callable[[RunRecord], None] | None = None,
) -> list[RunRecord]:
    """Run every job on a started gateway, at most `options.concurrency` at a time."""
    slots = asyncio.Semaphore(options.concurrency)

    async def one(job: Job) -> RunRecord:
        async with slots:
            record = await run_with_retries(gateway, job, options)
        if on_done is not None:
            on_done(record)
        return record

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def run_suite_jobs(
    config: Config, jobs: Sequence[Job], options: RunOptions
) -> list[RunRecord]:
    """Start a Gateway for `config`, run the jobs, close it."""
    gateway = Gateway(config, access_log=False)  # the suite's report is its record
    progress = Progress(len(jobs), options.progress)
    await gateway.start()
    try:
        return await run_jobs(gateway, jobs, options, progress.tick)
    finally:
        progress.close()
        await gateway.close()


async def run_with_retries(gateway: Gateway, job: Job, options: RunOptions) -> RunRecord:
    tries = 0
    while True:
        tries += 1
        record = await run_once(gateway, job, options.timeout_s, tries)
        record.tries = tries
        if record.ok or not record.retryable or tries > options.retries:
            return record
        await asyncio.sleep(options.backoff_s * 2 ** (tries - 1))


async def run_once(gateway: Gateway, job: Job, timeout_s: float, attempt: int = 1) -> RunRecord:
    prompt, target = job.prompt, job.target
    record = RunRecord(prompt.id, target.name, job.repeat)
    chat = ChatRequest(
        model=target.route.name,
        messages=copy.deepcopy(prompt.messages),
        stream=False,
        include_usage=True,
        params=copy.deepcopy(prompt.params),
        extra=copy.deepcopy(prompt.extra_body),
    )
    request_id = f"regress-{prompt.id}-{target.name}-{job.repeat}-{attempt}"
    started = time.perf_counter()
    caller = Caller(request_id, REGRESS_KEY, {}, started)
    try:
        answer = await gateway.pipeline.open(chat, caller, "regress", route=target.route)
    except Rejected as exc:
        record.error, record.error_status = exc.message, exc.status
        return record
    except Exception as exc:  # e.g. an adapter that cannot build this request
        record.error = f"cannot build the request: {type(exc).__name__}: {exc}"
        return record
    assembler = ResponseAssembler()
    winner: Winner | None = None
    try:
        async with asyncio.timeout(timeout_s):
            outcome = await answer.first()
            while outcome is HEARTBEAT:
                outcome = await answer.first()
            if isinstance(outcome, AllFailed):
                error = outcome.error
                record.error = f"{error.status or 'connection'} {error.type}: {error.message}"
                record.error_status, record.retryable = error.status, error.retryable
            else:
                assert isinstance(outcome, Winner)
                winner = outcome
                assembler.add(winner.events)
                while assembler.error is None:
                    batch = await answer.next_batch()
                    if batch is None:
                        break
                    assembler.add(batch)
    except TimeoutError:
        record.error, record.retryable = f"no complete answer within {timeout_s:g}s", True
    except Exception as exc:  # a bug in one run must not lose the others
        record.error = f"{type(exc).__name__}: {exc}"
    finally:
        closed = await answer.aclose()
    race_record = closed.race
    assert race_record is not None
    record.duration_ms = (time.perf_counter() - started) * 1000.0
    if winner is None:
        return record
    record.deployment = winner.deployment
    if assembler.meta is not None:
        record.model_version, record.fingerprint = assembler.meta.model, assembler.meta.fingerprint
    if assembler.error is not None and record.error is None:
        error = assembler.error
        record.error = f"mid-stream {error.type}: {error.message}"
        record.error_status, record.retryable = error.status, error.retryable
    won = next((a for a in race_record.attempts if a.outcome == "won"), None)
    if race_record.ttft_s is not None:
        record.ttft_ms = race_record.ttft_s * 1000.0
    if won is not None:
        record.prompt_tokens, record.completion_tokens = won.input_tokens, won.output_tokens
        record.cost_usd = won.cost_usd
    if record.error is not None:
        return record
    calls = tuple(
        ToolCall(call["name"], "".join(call["args"])) for _, call in sorted(assembler.tools.items())
    )
    output = Output("".join(assembler.text), calls, record.ttft_ms, record.completion_tokens)
    record.output, record.output_hash = output, output_hash(output)
    record.finish_reason = assembler.finish
    record.checks = run_checks(prompt.checks, output)
    return record
