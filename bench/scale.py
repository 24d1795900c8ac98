"""Memory per open stream, and 10,000 concurrent open streams on one gateway process.

    python -m bench.scale [--quick] [--sizes 1000,5000,10000] [--itl-ms 4000] [--tokens K]
                          [--open-concurrency 100] [--workers N] [--bare] [--upstream http2]
                          [--json bench/results/scale.json] [--logs DIR]

One simulator process (`python -m gateway sim`, an OpenAI-kind server whose
model trickles: TTFT 0, one token every `--itl-ms`) serves every phase. Each
phase starts a fresh gateway process (`python -m gateway serve`, one process,
`state.backend: memory`), so that memory freed by an earlier phase and kept by
the allocator cannot hide the cost of the next one, warms it up with a few
short streams, then reads its RSS (VmRSS in /proc/<pid>/status) while idle.

This process is the load tool (uvloop, aiohttp, the gateway's own SSE decoder
via `gateway.loadtest.StreamTimer`). It opens N streams through the gateway,
at most `--open-concurrency` of them between "request sent" and "first token"
at a time (the simulator listens with aiohttp's default backlog of 128), and
keeps every stream open until its last token. Each stream asks `max_tokens`
so that it outlasts the ramp (N / 150 per second, plus 30 s) unless `--tokens`
fixes it. Once all N streams have had their first token, and none has ended
yet, it samples the gateway's RSS a few times: KiB per stream =
(median RSS while open - RSS idle) / N. Then every stream must end with
`data: [DONE]` and all of its tokens; anything else (HTTP status, connection
error, in-stream error, short stream, timeout) is counted by kind.

`--workers N` serves with `serve --workers N` (N processes on one SO_REUSEPORT port,
the kernel spreading connections over them): RSS, fds and CPU are read per worker and
summed, and the table gives the streams each worker held and its KiB per stream.

`--bare` measures the floor in the same run: in each phase, after the gateway, a fresh
`bench.bare_proxy` process (bytes forwarded untouched, headers held until the first
token; always one process) in front of the same simulator goes through the same steps
(warm-up, RSS idle, N streams held, every one checked), and its row follows the
gateway's. What the gateway holds per stream beyond the bare proxy's is its own. A size
one process cannot hold under RLIMIT_NOFILE (with `--workers`) is skipped for the bare
proxy, with the reason in its row. The run fails if any measured row, bare or not, has
errors or fewer than N streams open at once.

`--upstream http2` has the simulator speak HTTP/2 and the gateway use it: a gateway
process then holds one socket per stream (its client's) and a few upstream connections
(the simulator takes 1,000 streams on each), so 10,000 streams fit one process under a
limit of 20,000 descriptors. A second, plain simulator server answers the readiness
check. Not with `--bare` (the bare proxy speaks HTTP/1.1 upstream).

File descriptors: a gateway holds two sockets per stream (client and
upstream), so N streams need 2N + a few fds in one process (2N / workers with
`--workers`), more than a default `ulimit -n`. This process raises RLIMIT_NOFILE before starting the
children, which inherit it. Where the hard limit cannot be raised (root
without CAP_SYS_RESOURCE, as in some containers: a hard limit of 20000 allows
at most ~9,984 streams per process), the sizes are capped and the table says
"(N asked)"; past that limit the gateway answers 502 (upstream connect fails)
or the kernel resets new client connections (accept fails), while the streams
already open go on.

The simulator, the gateway and this load tool share the machine's cores; the
stream length must exceed the time it takes to open all N streams ("all open
after"), otherwise the first streams end before the last open and fewer than
N are open at once ("peak open" says how many were; the run then fails).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
import yaml

from bench.procs import (
    Child,
    Children,
    cpu_seconds,
    free_port,
    listen_overflows,
    open_fds,
    proc_status,
    rss_kib,
    socket_count,
)
from gateway.loadtest import StreamTimer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "scale.json"
MODEL = "trickle"
WARM_MODEL = "warm"
API_KEY = "bench-key"
WARM_STREAMS = 50
MAX_TOKENS = 1000  # the model's length; each phase asks for fewer with max_tokens
FD_MARGIN = 32  # a gateway's own fds: listener, epoll, stdio, log, ...
LOAD_FD_SLACK = 1024  # this load tool holds a socket per stream, plus its own
RSS_SAMPLES = 5
GATEWAY = "gateway"
BARE = "bare-proxy"


@dataclass(slots=True)
class Settings:
    sizes: list[int]
    itl_ms: float
    tokens: int | None  # fixed tokens per stream; None: long enough for each phase's ramp
    open_concurrency: int
    hold_s: float = 30.0  # streams stay open at least this long after the (estimated) ramp
    open_rate: float = 150.0  # streams/s assumed for the ramp (measured: ~250-500/s here)
    requested_sizes: list[int] = field(default_factory=list)
    nofile: int = 0
    workers: int = 1
    bare: bool = False  # also measure bench.bare_proxy in each phase
    bare_cap: int = 0  # streams one bare proxy process can hold under RLIMIT_NOFILE
    http2: bool = False  # HTTP/2 between the gateway and the simulator

    @property
    def sockets_per_stream(self) -> int:
        """A gateway's: its client's, and over HTTP/1.1 its upstream's too."""
        return 1 if self.http2 else 2

    def tokens_for(self, n: int) -> int:
        if self.tokens is not None:
            return self.tokens
        stream_s = n / self.open_rate + self.hold_s
        return max(2, math.ceil(stream_s * 1000 / self.itl_ms))

    def timeout_s(self, n: int) -> float:
        return self.tokens_for(n) * self.itl_ms / 1000 + n / 50 + 60


@dataclass(slots=True)
class PhaseResult:
    target: str  # GATEWAY or BARE
    streams: int
    streams_asked: int  # before capping to the file-descriptor limit
    tokens: int
    itl_s: float
    rss_idle_kib: int
    rss_open_kib: int
    kib_per_stream: float
    hwm_kib: int
    fds_open: int
    all_open_after_s: float | None
    peak_open: int
    completed: int
    errors: dict[str, int]
    error_examples: list[str]
    total_s: float
    cpu_s: float  # utime + stime of the target's process(es) during the phase
    sim_cpu_s: float
    client_cpu_s: float
    listen_overflows: int  # system-wide TcpExt ListenOverflows during the phase
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    rss_samples_kib: list[int] = field(default_factory=list)
    workers: int = 1
    # per worker: streams held (from its socket count) and KiB per stream
    worker_streams: list[int] = field(default_factory=list)
    worker_kib_per_stream: list[float] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass(slots=True)
class Skipped:
    """A target not measured in a phase, and why."""

    target: str
    streams: int
    reason: str


@dataclass(frozen=True, slots=True)
class Target:
    """A proxy to measure in one phase: how to start a fresh process of it, how to see it ready."""

    name: str  # GATEWAY or BARE
    args: list[str]  # after `python`
    port: int
    ready_path: str | None  # polled until 200; None: until the port accepts a connection
    workers: int = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def gateway_target(config: Path, s: Settings) -> Target:
    port = free_port()
    args = ["-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
    if s.workers > 1:
        args += ["--workers", str(s.workers)]
    return Target(GATEWAY, args, port, "/healthz", s.workers)


def bare_target(sim_port: int, s: Settings) -> Target:
    port = free_port()
    args = ["-m", "bench.bare_proxy", "--port", str(port)]
    args += ["--upstream", f"http://127.0.0.1:{sim_port}/v1"]
    args += ["--max-connections", str(max(s.sizes) + 100)]  # one upstream connection per stream
    return Target(BARE, args, port, None)


def worker_pids(supervisor: int, workers: int, timeout_s: float = 20.0) -> list[int]:
    """The processes that serve: the gateway itself, or its N workers (`serve --workers N`)."""
    if workers <= 1:
        return [supervisor]
    deadline = time.monotonic() + timeout_s
    while True:
        path = Path(f"/proc/{supervisor}/task/{supervisor}/children")
        pids = [int(p) for p in path.read_text().split()]
        if len(pids) >= workers or time.monotonic() > deadline:
            return pids
        time.sleep(0.1)


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE to `wanted` (hard limit too if allowed); the soft limit we got."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            wanted = hard  # not allowed to raise the hard limit: take what there is
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def write_config(
    directory: Path, sim_port: int, gw_port: int, s: Settings, ctl_port: int = 0
) -> Path:
    """`ctl_port`: a plain HTTP/1.1 simulator server for the readiness check (with http2)."""
    biggest = max(s.sizes)
    config = {
        "listen": {"host": "127.0.0.1", "port": gw_port},
        "logging": {"format": "json", "level": "info"},
        "latency": {"prewarm": {"enabled": False}},
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{sim_port}/v1",
                "api_key": API_KEY,
                "max_connections": biggest + 100,  # one upstream connection per stream
                "connect_timeout_s": 30,
                **({"http2": True} if s.http2 else {}),
            }
        },
        "deployments": {
            MODEL: {
                "provider": "sim",
                "model": MODEL,
                "ttft_timeout_s": 60,
                "idle_timeout_s": max(60.0, 10 * s.itl_ms / 1000),
            },
            WARM_MODEL: {"provider": "sim", "model": WARM_MODEL},
        },
        "routing": {"allow_direct_deployments": True},  # the load names the deployment
        "sim": {
            "seed": 1,
            "servers": {
                "sim": {
                    "kind": "openai",
                    "port": sim_port,
                    **({"http2": True} if s.http2 else {}),
                    "models": {
                        MODEL: {"ttft_ms": 0, "itl_ms": s.itl_ms, "tokens": MAX_TOKENS},
                        WARM_MODEL: {"ttft_ms": 0, "itl_ms": 0, "tokens": 5},
                    },
                },
                **(
                    {"ctl": {"kind": "openai", "port": ctl_port, "models": {WARM_MODEL: {}}}}
                    if ctl_port
                    else {}
                ),
            },
        },
    }
    path = directory / "bench-scale.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def body(model: str, max_tokens: int | None = None) -> bytes:
    payload: dict[str, Any] = {
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": "Go on."}],
    }
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    return orjson.dumps(payload)


class Streams:
    """N streams through a proxy: open them (bounded), keep them, check every one."""

    def __init__(self, url: str, n: int, s: Settings) -> None:
        self.url = url + "/v1/chat/completions"
        self.n = n
        self.tokens = s.tokens_for(n)
        self.timeout_s = s.timeout_s(n)
        self.opening = asyncio.Semaphore(s.open_concurrency)
        self.open_now = 0  # first token seen, last not yet
        self.peak_open = 0
        self.settled = 0  # open or failed before their first token
        self.all_settled = asyncio.Event()
        self.completed = 0
        self.errors: Counter[str] = Counter()
        self.examples: list[str] = []
        self.ttfts: list[float] = []
        self.headers = {
            "Authorization": f"Bearer {API_KEY}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
        }

    def _settle(self) -> None:
        self.settled += 1
        if self.settled == self.n:
            self.all_settled.set()

    def _fail(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {detail}"[:200])

    async def one(self, session: aiohttp.ClientSession, payload: bytes) -> None:
        await self.opening.acquire()
        opening, opened = True, False
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                async with session.post(self.url, data=payload, headers=self.headers) as resp:
                    if resp.status != 200:
                        text = (await resp.content.read(2048)).decode(errors="replace")
                        self._fail(f"http_{resp.status}", text)
                        return
                    timer = StreamTimer(start)
                    async for data in resp.content.iter_any():
                        timer.feed(data, time.perf_counter())
                        if not opened and timer.first_token_at is not None:
                            opened = True
                            self.opening.release()
                            opening = False
                            self.ttfts.append(timer.first_token_at - start)
                            self.open_now += 1
                            self.peak_open = max(self.peak_open, self.open_now)
                            self._settle()
                    timer.close()
                    if timer.error is not None:
                        self._fail(timer.error, timer.error_detail or "")
                    elif timer.tokens != self.tokens:
                        self._fail("short_stream", f"{timer.tokens} of {self.tokens} tokens")
                    else:
                        self.completed += 1
        except TimeoutError:
            self._fail("timeout", f"no end after {self.timeout_s:g}s")
        except (aiohttp.ClientError, OSError) as exc:
            kind = "stream_error" if opened else "connect_error"
            self._fail(kind, f"{type(exc).__name__}: {exc}")
        finally:
            if opening:
                self.opening.release()
            if opened:
                self.open_now -= 1
            else:
                self._settle()


async def warm_up(session: aiohttp.ClientSession, url: str) -> None:
    """A few short streams: the upstream session, encoders and caches exist before we measure."""

    async def one() -> None:
        async with session.post(
            url + "/v1/chat/completions",
            data=body(WARM_MODEL),
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        ) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"warm-up request failed: {resp.status}")

    for _ in range(WARM_STREAMS // 10):
        await asyncio.gather(*(one() for _ in range(10)))


async def run_phase(
    target: Target, pids: list[int], sim_pid: int, n: int, asked: int, s: Settings
) -> PhaseResult:
    """Warm the target up, read its idle RSS, hold N streams through it, check every one."""
    url = target.url
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    # each stream has its own deadline (Streams.timeout_s); aiohttp's default total of
    # 300 s would cut streams longer than that
    no_total = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=no_total) as session:
        await warm_up(session, url)
        await asyncio.sleep(0.5)  # let the warm-up's request logs and buffers settle
        idle_each = [statistics.median(rss_kib(pid) for _ in range(3)) for pid in pids]
        idle = sum(idle_each)
        sockets_idle = [socket_count(pid) for pid in pids]
        cpu0 = sum(cpu_seconds(pid) for pid in pids)
        sim0, client0 = cpu_seconds(sim_pid), time.process_time()
        overflows0 = listen_overflows()
        streams = Streams(url, n, s)
        payload = body(MODEL, streams.tokens)
        started = time.perf_counter()
        tasks = [asyncio.create_task(streams.one(session, payload)) for _ in range(n)]
        all_open_after: float | None = None
        samples: list[int] = []
        fds = -1
        try:
            async with asyncio.timeout(streams.timeout_s):
                await streams.all_settled.wait()
            all_open_after = time.perf_counter() - started
        except TimeoutError:
            pass
        stream_s = s.itl_ms * streams.tokens / 1000
        open_each: list[list[int]] = [[] for _ in pids]
        held: list[int] = []
        if streams.open_now == n:  # all open at once: this is the state we measure
            fds = sum(open_fds(pid) for pid in pids)
            per = s.sockets_per_stream if target.name == GATEWAY else 2
            held = [
                (socket_count(pid) - idle_sockets) // per
                for pid, idle_sockets in zip(pids, sockets_idle, strict=True)
            ]
            for _ in range(RSS_SAMPLES):
                each = [rss_kib(pid) for pid in pids]
                for column, value in zip(open_each, each, strict=True):
                    column.append(value)
                samples.append(sum(each))
                await asyncio.sleep(min(0.2, stream_s / 20))
        else:
            print(
                f"  only {streams.open_now} of {n} streams open at once "
                f"(failed: {sum(streams.errors.values())}); longer streams needed?",
                file=sys.stderr,
            )
            samples.append(sum(rss_kib(pid) for pid in pids))
        await asyncio.gather(*tasks)
        total = time.perf_counter() - started
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
        sim_cpu, client_cpu = cpu_seconds(sim_pid) - sim0, time.process_time() - client0
        overflows = listen_overflows() - overflows0
    rss_open = int(statistics.median(samples))
    ttfts = sorted(streams.ttfts)
    return PhaseResult(
        target=target.name,
        streams=n,
        streams_asked=asked,
        tokens=streams.tokens,
        itl_s=s.itl_ms / 1000,
        rss_idle_kib=int(idle),
        rss_open_kib=rss_open,
        kib_per_stream=(rss_open - idle) / n,
        hwm_kib=max(proc_status(pid)["VmHWM"] for pid in pids),
        fds_open=fds,
        all_open_after_s=all_open_after,
        peak_open=streams.peak_open,
        completed=streams.completed,
        errors=dict(streams.errors),
        error_examples=streams.examples,
        total_s=total,
        cpu_s=cpu,
        sim_cpu_s=sim_cpu,
        client_cpu_s=client_cpu,
        listen_overflows=overflows,
        ttft_p50_ms=_pct(ttfts, 0.5),
        ttft_p99_ms=_pct(ttfts, 0.99),
        rss_samples_kib=samples,
        workers=len(pids),
        worker_streams=held,
        worker_kib_per_stream=[
            (statistics.median(column) - base) / count if column and count > 0 else 0.0
            for column, base, count in zip(open_each, idle_each, held, strict=False)
        ],
    )


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index] * 1000


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _label(target: str, processes: int) -> str:
    if target == BARE:
        return "bare proxy, 1 process"  # bench.bare_proxy has no workers
    return f"gateway, {processes} workers" if processes > 1 else "gateway, 1 process"


def _streams_cell(streams: int, asked: int) -> str:
    return str(streams) if streams == asked else f"{streams} ({asked} asked)"


def table(entries: Sequence[PhaseResult | Skipped]) -> str:
    header = [
        "streams",
        "target",
        "tokens x ITL s",
        "RSS idle MiB",
        "RSS with all open MiB",
        "KiB per stream",
        "fds",
        "all open after s",
        "peak open",
        "completed",
        "errors",
        "total s",
        "CPU s target / sim / load",
        "TTFT p50 / p99 ms (ramp)",
        "per process: streams, KiB per stream",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in entries:
        if isinstance(r, Skipped):
            cells = [str(r.streams), _label(r.target, 1), f"skipped: {r.reason}"]
            lines.append("| " + " | ".join(cells + ["-"] * (len(header) - len(cells))) + " |")
            continue
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(r.errors.items())) or "0"
        cells = [
            _streams_cell(r.streams, r.streams_asked),
            _label(r.target, r.workers),
            f"{r.tokens} x {r.itl_s:g}",
            f"{r.rss_idle_kib / 1024:.1f}",
            f"{r.rss_open_kib / 1024:.1f}",
            f"{r.kib_per_stream:.1f}",
            str(r.fds_open),
            _f(r.all_open_after_s),
            str(r.peak_open),
            str(r.completed),
            errors,
            f"{r.total_s:.1f}",
            f"{r.cpu_s:.1f} / {r.sim_cpu_s:.1f} / {r.client_cpu_s:.1f}",
            f"{_f(r.ttft_p50_ms)} / {_f(r.ttft_p99_ms)}",
            "; ".join(
                f"{count}, {kib:.1f}"
                for count, kib in zip(r.worker_streams, r.worker_kib_per_stream, strict=False)
            )
            or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N, short streams")
    parser.add_argument("--sizes", help="comma-separated stream counts (default 1000,5000,10000)")
    parser.add_argument("--itl-ms", type=float, help="gap between tokens (default 4000)")
    parser.add_argument(
        "--tokens", type=int, help="tokens per stream (default: enough to outlast the ramp)"
    )
    parser.add_argument("--open-concurrency", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N")
    parser.add_argument(
        "--bare",
        action="store_true",
        help="after the gateway, hold the same N streams through bench.bare_proxy (one process)",
    )
    parser.add_argument(
        "--upstream", choices=("http1", "http2"), default="http1", help="gateway to simulator"
    )
    parser.add_argument("--json", metavar="FILE", default=str(RESULTS), help="JSON output")
    parser.add_argument("--logs", metavar="DIR", help="keep the children's logs here")
    args = parser.parse_args(argv)
    if args.upstream == "http2" and args.bare:
        parser.error("--bare needs --upstream http1 (the bare proxy speaks HTTP/1.1)")
    return args


def settings(args: argparse.Namespace) -> Settings:
    sizes = [200, 1000] if args.quick else [1000, 5000, 10000]
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(",")]
    itl = args.itl_ms if args.itl_ms is not None else (1000.0 if args.quick else 4000.0)
    hold = 10.0 if args.quick else 30.0
    return Settings(
        sizes,
        itl,
        args.tokens,
        args.open_concurrency,
        hold_s=hold,
        workers=args.workers,
        bare=args.bare,
        http2=args.upstream == "http2",
    )


def fit_to_nofile(s: Settings) -> None:
    """A proxy holds two sockets per stream (client + upstream). Raise RLIMIT_NOFILE for the
    children; where the hard limit cannot be raised (no CAP_SYS_RESOURCE, e.g. in a
    container), cap the sizes at what the gateway's processes can hold, and say so. The bare
    proxy is one process: `s.bare_cap` is what it can hold (its larger phases are skipped)."""
    s.requested_sizes = list(s.sizes)
    # a worker holds 2 sockets per stream it serves (1 over HTTP/2; +10 % for an uneven
    # kernel spread); this load tool and the simulator hold one per stream each
    per = s.sockets_per_stream
    per_worker = per * max(s.sizes) * (1.1 if s.workers > 1 else 1.0) / s.workers
    per_process = max(per_worker, max(s.sizes), 2 * max(s.sizes) if s.bare else 0)
    s.nofile = raise_nofile(int(per_process) + FD_MARGIN + LOAD_FD_SLACK)
    load_cap = s.nofile - FD_MARGIN - LOAD_FD_SLACK
    s.bare_cap = min((s.nofile - FD_MARGIN) // 2, load_cap)
    cap = int((s.nofile - FD_MARGIN) * s.workers / (per * (1.1 if s.workers > 1 else 1.0)))
    cap = min(cap, load_cap)
    if max(s.sizes) > cap:
        print(
            f"RLIMIT_NOFILE is {s.nofile} here and its hard limit cannot be raised: "
            f"{s.workers} gateway process(es) can hold at most ~{cap} streams "
            f"({per} sockets each); capping the sizes",
            file=sys.stderr,
        )
        s.sizes = [min(n, cap) for n in s.sizes]


def measure(
    children: Children, directory: Path, target: Target, sim: Child, n: int, asked: int, s: Settings
) -> PhaseResult:
    """One phase for one target: a fresh process of it, N streams held through it, stopped."""
    name = f"{target.name}-{n}"
    child: Child = children.start(name, target.args, directory / f"{name}.log", ROOT)
    if target.ready_path is None:
        child.wait_port(target.port)
    else:
        child.wait_http(target.url + target.ready_path)
    print(
        f"{n} streams ({s.tokens_for(n)} tokens, one per {s.itl_ms:g} ms) through "
        f"{target.name} pid {child.pid}, simulator pid {sim.pid}",
        file=sys.stderr,
    )
    pids = worker_pids(child.pid, target.workers)
    result = uvloop.run(run_phase(target, pids, sim.pid, n, asked, s))
    print(
        f"  {target.name}: {result.kib_per_stream:.1f} KiB/stream, "
        f"errors {result.error_count}, {result.total_s:.1f}s",
        file=sys.stderr,
    )
    child.stop()
    children.children.remove(child)
    return result


def bare_skipped(n: int, s: Settings) -> Skipped:
    reason = (
        f"one process holds at most ~{s.bare_cap} streams "
        f"(RLIMIT_NOFILE {s.nofile}, 2 sockets per stream)"
    )
    print(f"  {BARE}: {n} streams skipped: {reason}", file=sys.stderr)
    return Skipped(BARE, n, reason)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("interrupted; simulator and gateway stopped", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    args = parse_args(argv)
    s = settings(args)
    fit_to_nofile(s)
    sim_port = free_port()
    entries: list[PhaseResult | Skipped] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, Children() as children:
        directory = Path(args.logs or tmp)
        directory.mkdir(parents=True, exist_ok=True)
        ctl_port = free_port() if s.http2 else 0
        config = write_config(directory, sim_port, free_port(), s, ctl_port)
        sim = children.gateway("sim", "sim", config, directory / "sim.log")
        sim.wait_http(f"http://127.0.0.1:{ctl_port or sim_port}/v1/models")
        for n, asked in zip(s.sizes, s.requested_sizes, strict=True):
            gateway = gateway_target(config, s)
            entries.append(measure(children, directory, gateway, sim, n, asked, s))
            if not s.bare:
                continue
            if n > s.bare_cap:
                entries.append(bare_skipped(n, s))
                continue
            entries.append(measure(children, directory, bare_target(sim_port, s), sim, n, asked, s))
    rows = [e for e in entries if isinstance(e, PhaseResult)]
    markdown = table(entries)
    print(markdown)
    out = {
        "markdown": markdown,
        "settings": asdict(s),
        "rows": [asdict(r) for r in rows],
        "skipped": [asdict(e) for e in entries if isinstance(e, Skipped)],
        "took_s": round(time.monotonic() - began, 1),
        "rlimit_nofile": s.nofile,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "aiohttp": aiohttp.__version__,
        },
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    print(f"wrote {path}", file=sys.stderr)
    return 0 if all(r.error_count == 0 and r.peak_open == r.streams for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
