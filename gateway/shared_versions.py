"""Model versions shared across instances: what each deployment's upstream last reported.

The `VersionTracker` sink notices versions in this instance's traffic; this service writes
each new one to one Redis hash (`{prefix:versions}`) and, every `interval_s`, adopts what
the other instances noticed, so every instance's admin view and version gauge agree. A
version adopted from another instance is not a change seen here: it logs nothing and does
not start an automatic regression run (the instance that saw it did, under its lease).
Background only: the request path never waits on it, and a Redis outage leaves the local
view as it is.
"""

from __future__ import annotations

import asyncio

import structlog

from gateway.redislayer import RedisLayer, RedisUnavailable
from gateway.sinks import VersionTracker
from gateway.tasks import cancel_and_wait, raise_if_cancelling

log = structlog.get_logger("gateway")


class SharedVersions:
    def __init__(
        self, tracker: VersionTracker, layer: RedisLayer, *, interval_s: float = 2.0
    ) -> None:
        self.tracker = tracker
        self.layer = layer
        self.interval_s = interval_s
        self.key = layer.key("versions")
        self._pending: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self.adopted = 0  # versions taken from other instances

    def _noticed(self, deployment: str, version: str) -> None:
        self._pending[deployment] = version

    async def start(self) -> None:
        if self._task is None:
            self.tracker.noticed.append(self._noticed)
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="shared-versions"
            )

    async def close(self) -> None:
        if self._noticed in self.tracker.noticed:
            self.tracker.noticed.remove(self._noticed)
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _loop(self) -> None:
        while True:
            await self.sync()
            raise_if_cancelling()
            await asyncio.sleep(self.interval_s)

    async def sync(self) -> None:
        """Write what was noticed here, then adopt what the others noticed."""
        pending, self._pending = self._pending, {}
        client = self.layer.client
        try:
            if pending:
                await self.layer.guard.call(
                    lambda: client.hset(self.key, mapping=pending),  # type: ignore[arg-type]
                    timeout_s=1.0,
                    part="versions",
                )
            shared = await self.layer.guard.call(
                lambda: client.hgetall(self.key), timeout_s=1.0, part="versions"
            )
        except RedisUnavailable:
            for name, version in pending.items():  # keep it for the next round
                self._pending.setdefault(name, version)
            return
        for raw_name, raw_version in shared.items():
            name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
            version = raw_version.decode() if isinstance(raw_version, bytes) else str(raw_version)
            if name in self._pending or self.tracker.versions.get(name) == version:
                continue  # noticed here since: ours goes out next round
            self.tracker.adopt(name, version)
            self.adopted += 1
