"""Load generator: streaming chat requests against any OpenAI-compatible base URL.

Why aiohttp + our own `SSEDecoder` rather than the official SDK or httpx-sse:
the SDK (httpx underneath) hands out bytes through its own iterators, line
decoder and event parser before we would see a chunk, and every such layer
can hold bytes back or run only when its consumer asks. Here aiohttp's
``response.content.iter_any()`` yields the bytes of each socket read as soon
as the protocol receives them, we take `time.perf_counter()` right then and
feed the bytes to the pure `gateway.streaming.sse.SSEDecoder` (via
`StreamTimer`). There is no extra buffering layer between the socket and the
timestamp, so what we measure is the server plus the event loop's scheduling
delay, nothing else.

Two load shapes:
- closed loop (`concurrency=N`, no `rate`): N workers, each sends its next
  request when the previous one ends; throughput adapts to the server.
- open loop (`rate=R`): requests are due at fixed times (R per second, evenly
  spaced or Poisson), whatever the server does, so queueing shows. Latency is
  measured from the time a request was *due*; `concurrency` then caps the
  requests in flight (a request that finds no free slot waits, and that wait
  counts).

A run ends after `requests` requests or `duration_s` seconds, whichever comes
first; requests still in flight then get `grace_s` more seconds before they
are cut (error kind ``aborted``). Each request has its own `timeout_s`.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from gateway.loadtest.stats import LoadSummary, RequestSample, run_elapsed, summarize
from gateway.loadtest.timing import Door, StreamTimer
from gateway.value_class import value_class

DEFAULT_PROMPT = "Write one short sentence about latency."
MAX_IN_FLIGHT = 10_000  # hard bound on open-loop requests in flight
MAX_ERROR_BODY = 64 * 1024
DOOR_PATHS = {"chat": "/chat/completions", "responses": "/responses", "messages": "/messages"}
ANTHROPIC_VERSION = "2023-06-01"


@value_class
class LoadSpec:
    """What to send and how much. Exactly the inputs of a run, kept in its result."""

    base_url: str
    model: str
    concurrency: int | None = None  # closed loop: workers (default 10); open loop: in-flight cap
    rate: float | None = None  # requests per second: open loop
    requests: int | None = None
    duration_s: float | None = None
    max_tokens: int | None = None
    prompt: str = DEFAULT_PROMPT
    timeout_s: float = 60.0
    grace_s: float = 10.0
    poisson: bool = False  # open loop: exponential gaps instead of even spacing
    seed: int = 0
    request_id_prefix: str | None = None  # send x-request-id: <prefix><index>
    headers: tuple[tuple[str, str], ...] = ()
    extra_body: tuple[tuple[str, Any], ...] = ()
    door: Door = "chat"  # the front door: chat completions, Responses or Anthropic Messages

    def __post_init__(self) -> None:
        if self.requests is None and self.duration_s is None:
            raise ValueError("give a number of requests, a duration, or both")
        if self.requests is not None and self.requests < 1:
            raise ValueError(f"requests must be >= 1, got {self.requests}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError(f"duration must be > 0, got {self.duration_s}")
        if self.concurrency is not None and not 1 <= self.concurrency <= MAX_IN_FLIGHT:
            raise ValueError(f"concurrency must be within 1..{MAX_IN_FLIGHT}")
        if self.rate is not None and not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not self.timeout_s > 0 or self.grace_s < 0:
            raise ValueError("timeout must be > 0 and grace >= 0")

    @property
    def mode(self) -> str:
        return "open" if self.rate is not None else "closed"

    @property
    def slots(self) -> int:
        if self.concurrency is not None:
            return self.concurrency
        return MAX_IN_FLIGHT if self.rate is not None else 10

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + DOOR_PATHS[self.door]

    def body(self) -> bytes:
        body: dict[str, Any] = {"model": self.model, "stream": True}
        if self.door == "responses":
            body["input"] = self.prompt
            if self.max_tokens is not None:
                body["max_output_tokens"] = self.max_tokens
        else:
            body["messages"] = [{"role": "user", "content": self.prompt}]
            if self.door == "messages":  # required by the Messages API
                body["max_tokens"] = self.max_tokens or 1024
            elif self.max_tokens is not None:
                body["max_tokens"] = self.max_tokens
        body.update(dict(self.extra_body))
        return orjson.dumps(body)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "model": self.model,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "rate": self.rate,
            "requests": self.requests,
            "duration_s": self.duration_s,
            "max_tokens": self.max_tokens,
            "timeout_s": self.timeout_s,
            "poisson": self.poisson,
            "header_names": sorted({k for k, _ in self.headers}),  # values may be secrets
        }


@dataclass(slots=True)
class LoadResult:
    spec: LoadSpec
    samples: list[RequestSample]
    summary: LoadSummary
    started_at: float  # wall clock (time.time()) of the run start
    extra: dict[str, Any] = field(default_factory=dict)  # callers' annotations

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "spec": self.spec.to_dict(),
            "started_at": self.started_at,
            "summary": self.summary.to_dict(),
        }
        if self.extra:
            out["extra"] = self.extra
        if samples:
            out["samples"] = [s.to_dict() for s in self.samples]
        return out


class _Run:
    """State of one run: the schedule, the session, the samples."""

    def __init__(self, spec: LoadSpec, session: aiohttp.ClientSession, api_key: str | None) -> None:
        self.spec = spec
        self.session = session
        self.body = spec.body()
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if spec.door == "messages":
            headers["anthropic-version"] = ANTHROPIC_VERSION
        headers.update(dict(spec.headers))
        self.headers = headers
        self.loop = asyncio.get_running_loop()
        self.t0 = time.perf_counter()
        self.stop_at = self.t0 + spec.duration_s if spec.duration_s is not None else None
        self.hard_end = self.stop_at + spec.grace_s if self.stop_at is not None else None
        self.samples: list[RequestSample] = []
        self.started = 0
        self.in_flight = 0
        self.errors = 0

    def may_start(self) -> bool:
        if self.spec.requests is not None and self.started >= self.spec.requests:
            return False
        return self.stop_at is None or time.perf_counter() < self.stop_at

    def _loop_deadline(self, start: float) -> tuple[float, bool]:
        """(deadline in loop time, True if the run's hard end comes first)."""
        end = start + self.spec.timeout_s
        cut = self.hard_end is not None and self.hard_end < end
        if cut:
            assert self.hard_end is not None
            end = self.hard_end
        return self.loop.time() + (end - time.perf_counter()), cut

    async def one(self, index: int, due: float) -> None:
        """Send request `index`, due at perf time `due`, and record its sample."""
        sent = time.perf_counter()
        sample = RequestSample(index=index, start_s=due - self.t0, send_lag_s=max(sent - due, 0.0))
        self.in_flight += 1
        headers = self.headers
        if self.spec.request_id_prefix is not None:
            headers = {**headers, "x-request-id": f"{self.spec.request_id_prefix}{index}"}
        deadline, cut = self._loop_deadline(due)
        timer: StreamTimer | None = None
        try:
            async with asyncio.timeout_at(deadline):
                async with self.session.post(self.spec.url, data=self.body, headers=headers) as r:
                    sample.status = r.status
                    sample.request_id = r.headers.get("x-request-id")
                    sample.deployment = r.headers.get("x-gateway-deployment")
                    if r.status != 200:
                        detail = await r.content.read(MAX_ERROR_BODY)
                        sample.error = f"http_{r.status}"
                        sample.error_detail = detail[:200].decode("utf-8", "replace")
                        return
                    timer = StreamTimer(due, door=self.spec.door)
                    try:
                        async for data in r.content.iter_any():
                            timer.feed(data, time.perf_counter())
                    except (aiohttp.ClientError, ConnectionError) as exc:
                        _fail(sample, "stream_error", exc)
                        return
                    timer.close()
                    if timer.error is not None:
                        sample.error, sample.error_detail = timer.error, timer.error_detail
        except aiohttp.ClientError as exc:
            # before the response headers: connection refused/reset/timed out, bad HTTP, ...
            _fail(sample, "connect_error" if sample.status is None else "stream_error", exc)
        except TimeoutError:  # our own deadline (aiohttp's timeouts are ClientErrors)
            sample.error = "aborted" if cut else "timeout"
        except OSError as exc:
            _fail(sample, "connect_error" if sample.status is None else "stream_error", exc)
        finally:
            end = time.perf_counter()
            self.in_flight -= 1
            sample.total_s = end - due
            if timer is not None:
                sample.ttft_s = timer.ttft
                sample.itl_s = timer.gaps
                sample.tokens = timer.tokens
                sample.chars = timer.chars
                sample.events = timer.events
            self.errors += sample.error is not None
            self.samples.append(sample)

    async def closed_loop(self) -> None:
        async def worker() -> None:
            while self.may_start():
                index = self.started
                self.started += 1
                await self.one(index, time.perf_counter())

        async with asyncio.TaskGroup() as tg:
            for _ in range(self.spec.slots):
                tg.create_task(worker())

    async def open_loop(self) -> None:
        assert self.spec.rate is not None
        rng = random.Random(self.spec.seed)
        slots = asyncio.Semaphore(self.spec.slots)
        gap = 1.0 / self.spec.rate

        async def send(index: int, due: float) -> None:
            try:
                await self.one(index, due)
            finally:
                slots.release()

        due = self.t0
        async with asyncio.TaskGroup() as tg:
            while True:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not self.may_start():
                    break
                await slots.acquire()
                index = self.started
                self.started += 1
                tg.create_task(send(index, due))
                due += rng.expovariate(self.spec.rate) if self.spec.poisson else gap


def _fail(sample: RequestSample, kind: str, exc: BaseException) -> None:
    sample.error = kind
    sample.error_detail = f"{type(exc).__name__}: {exc}"[:200]


async def _progress(run: _Run) -> None:
    """One line on stderr, rewritten a few times per second."""
    spec = run.spec
    width = 30
    while True:
        await asyncio.sleep(0.2)
        now = time.perf_counter() - run.t0
        done = len(run.samples)
        parts = []
        if spec.requests is not None:
            share = done / spec.requests
        else:
            share = now / spec.duration_s if spec.duration_s else 0.0
        share = min(share, 1.0)
        bar = "#" * int(share * width)
        parts.append(f"[{bar:<{width}}] {done} done")
        parts.append(f"{run.in_flight} in flight")
        parts.append(f"{done / now:.1f} req/s" if now > 0 else "")
        parts.append(f"{run.errors} errors  {now:.0f}s")
        sys.stderr.write("\r" + "  ".join(p for p in parts if p) + " ")
        sys.stderr.flush()


async def run_load(
    base_url: str,
    model: str,
    *,
    api_key: str | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    requests: int | None = None,
    duration_s: float | None = None,
    max_tokens: int | None = None,
    prompt: str = DEFAULT_PROMPT,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
    grace_s: float = 10.0,
    poisson: bool = False,
    seed: int = 0,
    request_id_prefix: str | None = None,
    extra_body: Mapping[str, Any] | None = None,
    session: aiohttp.ClientSession | None = None,
    progress: bool | None = None,
    door: Door = "chat",
) -> LoadResult:
    """Run one load and return every sample with its summary.

    Pass `session` to reuse warm connections across runs (its connector limit
    should allow `concurrency` connections); otherwise one is made and closed.
    `progress` None shows a progress line on stderr only when stderr is a TTY.
    """
    spec = LoadSpec(
        base_url=base_url,
        model=model,
        concurrency=concurrency,
        rate=rate,
        requests=requests,
        duration_s=duration_s,
        max_tokens=max_tokens,
        prompt=prompt,
        timeout_s=timeout_s,
        grace_s=grace_s,
        poisson=poisson,
        seed=seed,
        request_id_prefix=request_id_prefix,
        headers=tuple((headers or {}).items()),
        extra_body=tuple((extra_body or {}).items()),
        door=door,
    )
    return await run_spec(spec, api_key=api_key, session=session, progress=progress)


async def run_spec(
    spec: LoadSpec,
    *,
    api_key: str | None = None,
    session: aiohttp.ClientSession | None = None,
    progress: bool | None = None,
) -> LoadResult:
    """`run_load` with a ready-made (already validated) `LoadSpec`."""
    own = session is None
    if session is None:
        session = make_session(spec.slots)
    started_at = time.time()
    show = sys.stderr.isatty() if progress is None else progress
    try:
        run = _Run(spec, session, api_key)
        bar = asyncio.create_task(_progress(run)) if show else None
        try:
            if spec.mode == "open":
                await run.open_loop()
            else:
                await run.closed_loop()
        finally:
            if bar is not None:
                bar.cancel()
                await asyncio.wait([bar])  # re-raises only our own cancellation
                sys.stderr.write("\n")
    finally:
        if own:
            await session.close()
    samples = sorted(run.samples, key=lambda s: s.index)
    return LoadResult(spec, samples, summarize(samples, run_elapsed(samples)), started_at)


def make_session(connections: int) -> aiohttp.ClientSession:
    """A client session sized for `connections` concurrent streams, no overall timeout."""
    connector = aiohttp.TCPConnector(
        limit=connections, limit_per_host=connections, keepalive_timeout=30.0
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0),
        skip_auto_headers=("User-Agent",),
    )
