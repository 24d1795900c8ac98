"""`serve --workers N`: a supervisor process and N worker processes on one SO_REUSEPORT port.

Each worker is a fresh interpreter started as
`python -m gateway serve --config F --host H --port P --grace S --worker-of i/N`:
it runs uvloop and its own `Gateway`, binds the same port with SO_REUSEPORT (the
kernel spreads new connections over the listening workers) and tags its
responses with `x-gateway-worker: <pid>`.

Why re-exec rather than `multiprocessing`: a worker is exactly the single-process
server (the same code path, the same command line a user can run), with nothing
pickled across (the config, secrets included, is read from the file and the
environment by each worker), no inherited event loop, threads or sockets, no
resource-tracker helper, and `ps` shows what each process is.

The supervisor holds no listening socket and runs no gateway. It
- starts the workers and prints one line once all listen (with their pids);
- restarts a worker that exits while not shutting down, after a backoff that
  doubles (0.5 s .. 30 s) while workers die young and resets once one lived 10 s;
  a worker that fails before it ever listened at start-up (port in use, ...)
  stops the whole server with exit status 1;
- forwards SIGHUP to every worker that listens: each reloads the config file on its
  own (server/live.py) and keeps its old config, saying why in its log, if the new one
  is invalid (`--watch` is passed on: each worker watches the file itself);
- forwards SIGTERM/SIGINT to every worker (a second one forces them), waits
  for them to drain (the grace period, plus a margin, then SIGKILL) and exits 0
  when every worker exited 0.
Workers run in their own session, so a terminal's Ctrl-C reaches the supervisor
only (and is forwarded once); a worker whose supervisor dies (even by SIGKILL)
notices it and drains.

State: workers share nothing in memory. With `state.backend: memory` each worker
has its own latency profiles, circuit breakers, rate limits, spend and feedback
(a limit of 60 rpm becomes up to 60 rpm per worker); `state.backend: redis` is
what makes them shared across workers, as across hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from gateway.config.model import Config

log = structlog.get_logger("gateway.supervisor")

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 10.0  # a worker that lived this long resets the backoff
STARTUP_TIMEOUT_S = 60.0
STOP_MARGIN_S = 10.0  # beyond the grace period, before SIGKILL
READY_MARK = b" listening on "


@dataclass(slots=True)
class WorkerSlot:
    index: int  # 1..N
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    ever_ready: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    pids: list[int] = field(default_factory=list)  # every process this slot has run

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


def backoff_s(quick_deaths: int) -> float:
    """Delay before restarting a worker after `quick_deaths` consecutive early deaths."""
    return min(BACKOFF_MAX_S, BACKOFF_START_S * 2 ** max(quick_deaths - 1, 0))


def reserve_port(host: str) -> socket.socket:
    """Bind (not listen) an SO_REUSEPORT socket on port 0 and keep it: the workers can then
    all bind the port it got, and no other program can take it meanwhile."""
    family, type_, proto, _, addr = socket.getaddrinfo(
        host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(addr)
    return sock


class Supervisor:
    def __init__(
        self,
        config_path: str,
        host: str,
        port: int,
        workers: int,
        grace_s: float,
        python: str = sys.executable,
        watch_s: float | None = None,
    ) -> None:
        self.config_path = str(Path(config_path).resolve())
        self.host = host
        self.port = port
        self.grace_s = grace_s
        self.watch_s = watch_s
        self.python = python
        self.slots = [WorkerSlot(i + 1) for i in range(workers)]
        self.stopping = asyncio.Event()
        self.startup_failed = asyncio.Event()
        self.signal: signal.Signals = signal.SIGTERM
        self.signals_seen = 0

    def argv(self, slot: WorkerSlot) -> list[str]:
        watch = [] if self.watch_s is None else ["--watch", repr(self.watch_s)]
        return [
            self.python,
            "-m",
            "gateway",
            "serve",
            "--config",
            self.config_path,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--grace",
            repr(self.grace_s),
            "--worker-of",
            f"{slot.index}/{len(self.slots)}",
            *watch,
        ]

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload)
        keepers = [asyncio.create_task(self._keep(slot)) for slot in self.slots]
        try:
            if not await self._started():
                self.stopping.set()
                await self._stop_all()
                return 1
            pids = ", ".join(str(s.proc.pid) for s in self.slots if s.proc is not None)
            print(
                f"race-gateway listening on http://{self.host}:{self.port} "
                f"with {len(self.slots)} workers (pids {pids})",
                flush=True,
            )
            await self.stopping.wait()
            return await self._stop_all()
        finally:
            for task in keepers:
                task.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _started(self) -> bool:
        """True once every worker listens; False if one failed first, or on timeout."""
        waits: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(asyncio.gather(*(s.ready.wait() for s in self.slots))),
            asyncio.ensure_future(self.startup_failed.wait()),
            asyncio.ensure_future(self.stopping.wait()),
        }
        try:
            await asyncio.wait(
                waits, timeout=STARTUP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for fut in waits:
                fut.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        if self.startup_failed.is_set():
            log.error("startup_failed", reason="a worker exited before it listened")
            return False
        if not all(s.ready.is_set() for s in self.slots) and not self.stopping.is_set():
            log.error("startup_failed", reason=f"workers not listening after {STARTUP_TIMEOUT_S}s")
            return False
        return True

    def _on_signal(self, sig: signal.Signals) -> None:
        self.signals_seen += 1
        if not self.stopping.is_set():
            self.signal = sig
            log.info("shutdown_signal", signal=sig.name, workers=len(self.slots))
            self.stopping.set()
        for slot in self.slots:  # the first drains, a second one forces
            if slot.alive and slot.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(sig)

    def _on_reload(self) -> None:
        """SIGHUP: every listening worker reloads the config file. A worker still starting
        reads the file as it starts (and has no SIGHUP handler yet: it is skipped)."""
        if self.stopping.is_set():
            return
        sent = []
        for slot in self.slots:
            if slot.alive and slot.ready.is_set() and slot.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(signal.SIGHUP)
                    sent.append(slot.proc.pid)
        log.info("reload_signal", signal="SIGHUP", workers=sent)

    async def _keep(self, slot: WorkerSlot) -> None:
        """Run one worker slot: start, wait, restart with backoff until shutdown."""
        while not self.stopping.is_set():
            proc = await asyncio.create_subprocess_exec(
                *self.argv(slot),
                stdin=asyncio.subprocess.PIPE,  # never written: EOF tells it we are gone
                stdout=asyncio.subprocess.PIPE,  # stderr (the logs) goes straight through
                start_new_session=True,
            )
            slot.proc, slot.started_at = proc, time.monotonic()
            slot.ready.clear()  # no SIGHUP until it listens (and handles it)
            slot.pids.append(proc.pid)
            log.info("worker_started", worker=slot.index, pid=proc.pid)
            if self.stopping.is_set():  # the signal came while it was being spawned
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(self.signal)
            pump = asyncio.create_task(self._pump(slot, proc))
            code = await proc.wait()
            await pump
            if self.stopping.is_set():
                return
            lived = time.monotonic() - slot.started_at
            if not slot.ever_ready and not all(s.ever_ready for s in self.slots):
                log.error("worker_failed_at_startup", worker=slot.index, pid=proc.pid, code=code)
                self.startup_failed.set()
                return
            slot.quick_deaths = 0 if lived >= STABLE_AFTER_S else slot.quick_deaths + 1
            delay = backoff_s(slot.quick_deaths)
            log.warning(
                "worker_exited",
                worker=slot.index,
                pid=proc.pid,
                code=code,
                lived_s=round(lived, 1),
                restart_in_s=delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def _pump(self, slot: WorkerSlot, proc: asyncio.subprocess.Process) -> None:
        """Copy a worker's stdout to ours, line by line; its listening line means ready."""
        assert proc.stdout is not None
        out = sys.stdout.buffer
        while line := await proc.stdout.readline():
            if READY_MARK in line:
                slot.ever_ready = True
                slot.ready.set()
            with contextlib.suppress(OSError, ValueError):
                out.write(line)
                out.flush()

    async def _stop_all(self) -> int:
        """Wait for every worker to drain and exit; SIGKILL the ones past the deadline."""
        live = [s.proc for s in self.slots if s.alive and s.proc is not None]
        if not live:
            return 0
        deadline = self.grace_s + STOP_MARGIN_S
        waits = [asyncio.ensure_future(p.wait()) for p in live]
        _, pending = await asyncio.wait(waits, timeout=deadline)
        killed = 0
        for proc in live:
            if proc.returncode is None:
                killed += 1
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        if pending:
            await asyncio.wait(pending)
        codes = {str(p.pid): p.returncode for p in live}
        ok = all(code == 0 for code in codes.values())
        log.info("shutdown_done", worker_exit_codes=codes, killed=killed)
        return 0 if ok else 1


def supervise(
    config_path: str,
    config: Config,
    host: str,
    port: int,
    workers: int,
    grace_s: float,
    *,
    watch_s: float | None = None,
) -> int:
    """Run `workers` worker processes on host:port until SIGTERM/SIGINT; the exit status."""
    if not hasattr(socket, "SO_REUSEPORT"):
        print("--workers > 1 needs SO_REUSEPORT (Linux, BSD, macOS)", file=sys.stderr)
        return 2
    if config.state.backend == "memory":
        log.warning(
            "state_per_worker",
            workers=workers,
            detail="state.backend is memory: each worker keeps its own latency profiles, "
            "circuit breakers and rate limits; use state.backend: redis to share them",
        )
    reserved: socket.socket | None = None
    if port == 0:
        reserved = reserve_port(host)
        port = int(reserved.getsockname()[1])
    try:
        supervisor = Supervisor(config_path, host, port, workers, grace_s, watch_s=watch_s)
        return asyncio.run(supervisor.run())
    finally:
        if reserved is not None:
            reserved.close()
