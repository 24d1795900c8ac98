"""Pre-warming: keep idle keep-alive connections to the deployments the profiles predict.

For every region seen in the last hour (the default region counts from start),
the deployments predicted fastest for the current and the next UTC hour get
`connections` idle connections, refreshed every `interval_s` (before the pool's
keep-alive timeout drops them). Opening them is the caller's `warm` callable,
so this module knows nothing of HTTP or wire formats.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection

import structlog

from gateway.latency.clock import hour_of
from gateway.tasks import cancel_and_wait

log = structlog.get_logger("gateway.prewarm")


class PreWarmer:
    def __init__(
        self,
        *,
        deployments: list[str],
        predict: Callable[[str, str, int], float],
        warm: Callable[[dict[str, int]], Awaitable[None]],
        top_n: int = 2,
        connections: int = 2,
        interval_s: float = 15.0,
        default_region: str | None = None,
        region_ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.deployments = deployments
        self.predict = predict
        self.warm = warm
        self.top_n = top_n
        self.connections = connections
        self.interval_s = interval_s
        self.region_ttl_s = region_ttl_s
        self.clock = clock
        self._regions: dict[str, float] = {}
        if default_region:
            self._regions[default_region] = clock()
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.last_targets: dict[str, int] = {}
        self._round_done = asyncio.Condition()

    def note_region(self, region: str) -> None:
        self._regions[region] = self.clock()

    def carry_regions(self, replaced: PreWarmer, regions: Collection[str]) -> None:
        """A config reload: keep warming for the regions (still configured) that the
        replaced pre-warmer saw active."""
        for region, seen in replaced._regions.items():
            if region in regions:
                self._regions[region] = max(seen, self._regions.get(region, seen))

    def targets(self) -> dict[str, int]:
        """Deployment -> idle connections wanted, for active regions, this hour and the next."""
        now = self.clock()
        hour = hour_of(now)
        wanted: dict[str, int] = {}
        for region, seen in list(self._regions.items()):
            if now - seen > self.region_ttl_s:
                del self._regions[region]
                continue
            for h in (hour, (hour + 1) % 24):
                ranked = sorted(self.deployments, key=lambda d: self.predict(d, region, h))
                for name in ranked[: self.top_n]:
                    wanted[name] = self.connections
        return wanted

    async def run_once(self) -> dict[str, int]:
        targets = self.targets()
        if targets:
            await self.warm(targets)
        self.last_targets = targets
        self.rounds += 1
        async with self._round_done:
            self._round_done.notify_all()
        return targets

    async def wait_rounds(self, n: int) -> None:
        """Wait until `n` rounds have completed (tests and the demo use this)."""
        async with self._round_done:
            await self._round_done.wait_for(lambda: self.rounds >= n)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # warming is best effort; never stop the loop
                log.warning("prewarm_failed", error=type(exc).__name__)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._task is None and self.connections > 0:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="prewarm")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
