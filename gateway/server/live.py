"""The gateway that serves now, and config reloads (SIGHUP, `POST /admin/reload`,
`serve --watch`).

A reload reads the config file, validates it as `check-config` does (every problem,
path-precise) and, if it is valid, builds a new `Gateway` from it next to the one that
serves (`Gateway(config, previous=...)`: what carries over is said in gateway.reload)
and swaps it in. Each request takes the current `Snapshot` once, when it starts
(`acquire`), and keeps it to its end, so requests in flight finish on the config they
started with. A replaced snapshot *drains*: its pre-warming stops at once; when its last
request ends, the pools and shared state that no serving snapshot uses any more close.
An invalid config changes nothing: the old one keeps serving.

Changes a running server cannot apply (gateway.reload.RESTART_ONLY: the listen address,
CORS, logging, the body size limit) are reported and wait for a restart; the rest of the
reload applies.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from gateway.config.model import Config
from gateway.config.validate import ConfigError
from gateway.config_checks import load_checked
from gateway.runtime import Gateway
from gateway.value_class import value_class

log = structlog.get_logger("gateway.reload")


def file_hash(data: bytes) -> str:
    """The config version shown in metrics and logs: sha256 of the file, 12 hex digits."""
    return hashlib.sha256(data).hexdigest()[:12]


@dataclass(eq=False, slots=True)
class Snapshot:
    """One config's gateway and the server's view of it, with its requests in flight."""

    gateway: Gateway
    version: str  # the config file's hash ("" when built from a Config object)
    leases: int = 0
    retired: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.leases -= 1
        if self.retired and self.leases == 0:
            self.drained.set()


@value_class
class ReloadResult:
    result: str  # ok | invalid | unchanged | failed
    version: str
    problems: tuple[str, ...] = ()
    changes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.result in ("ok", "unchanged")

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"result": self.result, "config_hash": self.version}
        if self.changes:
            out["changes"] = self.changes
        if self.problems:
            out["problems"] = list(self.problems)
        return out


class LiveGateway:
    def __init__(
        self,
        gateway: Gateway,
        config_path: str | None = None,
        setup: Callable[[Gateway], object] | None = None,
    ) -> None:
        """`setup` is what the entry point did to `gateway` (attach services): it is done
        to every gateway a reload builds."""
        self.path = config_path
        self.setup = setup
        version = file_hash(Path(config_path).read_bytes()) if config_path else ""
        self.current = Snapshot(gateway, version)
        self._draining: list[Snapshot] = []
        self._closers: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        if version:
            gateway.metrics.config_loaded_now(version, time.time())

    @property
    def gateway(self) -> Gateway:
        return self.current.gateway

    def acquire(self) -> Snapshot:
        """The snapshot a request keeps from its start to its end (then `release()` it)."""
        snapshot = self.current
        snapshot.leases += 1
        return snapshot

    async def reload(self, source: str) -> ReloadResult:
        """Reload the config file; never raises (the result says what happened)."""
        async with self._lock:
            return await self._reload(source)

    async def _reload(self, source: str) -> ReloadResult:
        metrics = self.gateway.metrics
        if self.path is None:
            return ReloadResult("failed", self.current.version, ("no config file to reload",))
        try:
            config, data = await asyncio.to_thread(load_checked, self.path)
        except ConfigError as exc:
            return self._refused(source, exc)
        if not data.strip():  # an empty file parses to the defaults: no deployment at all
            return self._refused(source, ConfigError([f"{self.path}: the file is empty"]))
        version = file_hash(data)
        if version == self.current.version:
            metrics.reloads.labels("unchanged").inc()
            log.info("config_reload_unchanged", source=source, config_hash=version)
            return ReloadResult("unchanged", version)
        return await self.swap(config, version, source)

    def _refused(self, source: str, exc: ConfigError) -> ReloadResult:
        self.gateway.metrics.reloads.labels("invalid").inc()
        log.warning(
            "config_reload_refused",
            source=source,
            problems=exc.problems,
            serving=self.current.version,
        )
        return ReloadResult("invalid", self.current.version, tuple(exc.problems))

    async def swap(self, config: Config, version: str, source: str = "api") -> ReloadResult:
        """Serve `config` from now on (it is valid); the replaced snapshot drains."""
        old = self.current
        metrics = old.gateway.metrics
        gateway: Gateway | None = None
        try:
            gateway = Gateway(config, previous=old.gateway)
            if self.setup is not None:
                self.setup(gateway)
            await gateway.start()
        except Exception as exc:  # e.g. a provider adapter refusing its options
            if gateway is not None:
                await self._discard(gateway, old.gateway)
            old.gateway.watch_state()  # the failed gateway may have taken the gauges
            metrics.reloads.labels("failed").inc()
            log.exception("config_reload_failed", source=source, serving=old.version)
            return ReloadResult("failed", old.version, (f"{type(exc).__name__}: {exc}",))
        self.current = Snapshot(gateway, version)
        old.retired = True
        if old.leases == 0:
            old.drained.set()
        self._draining.append(old)
        task = asyncio.create_task(self._retire(old), name="config-retire")
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)
        changes = gateway.changes.summary() if gateway.changes else {}
        metrics.reloads.labels("ok").inc()
        metrics.config_loaded_now(version, time.time())
        log.info(
            "config_reloaded",
            source=source,
            config_hash=version,
            previous=old.version,
            in_flight=old.leases,
            state="kept" if not gateway.owns_state else "rebuilt",
            **changes,
        )
        restart = changes.get("restart_required")
        if restart:
            log.warning("config_reload_needs_restart", sections=restart)
        return ReloadResult("ok", version, (), changes)

    async def _discard(self, failed: Gateway, serving: Gateway) -> None:
        """Undo a gateway that could not start: what it shares goes back to the serving
        config, what is its own closes."""
        await failed.stop_background()
        if failed.owns_state:
            await failed.close_state()
        else:
            failed.state.reconfigure(serving.config)
        kept = {id(p) for p in serving.pools.values()}
        for pool in failed.pools.values():
            if id(pool) not in kept:
                await pool.close()
        if failed.trace_sink is not None:
            await failed.trace_sink.close()

    async def _retire(self, old: Snapshot) -> None:
        """Stop the old snapshot's pre-warming, wait for its requests, then close what
        no other snapshot (serving or still draining) uses."""
        try:
            await old.gateway.stop_background()
            await old.drained.wait()
        finally:
            self._draining.remove(old)
            await self._close_unused(old.gateway)

    async def _close_unused(self, gone: Gateway) -> None:
        others = [self.current.gateway, *(s.gateway for s in self._draining)]
        pools_in_use = {id(p) for g in others for p in g.pools.values()}
        closed = []
        for name, pool in gone.pools.items():
            if id(pool) not in pools_in_use:
                await pool.close()
                closed.append(name)
        state_closed = all(g.state is not gone.state for g in others)
        if state_closed:
            await gone.close_state()
        if gone.trace_sink is not None:  # each config has its own; its spans are all in
            await gone.trace_sink.close()
        log.info("config_drained", pools_closed=closed, state_closed=state_closed)

    async def close(self) -> None:
        """At shutdown (no request left): finish the drains, close the serving gateway."""
        for snapshot in self._draining:
            snapshot.drained.set()
        if self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)
        await self.gateway.close()
