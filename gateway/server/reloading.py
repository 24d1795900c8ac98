"""What starts a config reload in a serving process: SIGHUP, and with `serve --watch` a
change of the config file (its mtime, size or inode, then its content hash, polled: no
file-watching dependency). `POST /admin/reload` is the third way (server/admin.py).

Reloads run one at a time (`LiveGateway.reload` holds a lock); a file whose new content
was refused is not tried again until it changes again. The watcher reloads a file once it
has not changed for one polling interval, so an editor's write in progress (a truncated,
half-written file) is not taken for the new config.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import structlog

from gateway.server.live import LiveGateway, file_hash
from gateway.tasks import cancel_and_wait

log = structlog.get_logger("gateway.reload")

DEFAULT_WATCH_S = 1.0


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # being replaced, or gone: the next poll looks again
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


class ReloadTriggers:
    def __init__(self, live: LiveGateway) -> None:
        self.live = live
        self._reloads: set[asyncio.Task[object]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._signal = False

    def install(self, watch_s: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
            self._signal = True
        if watch_s is not None and self.live.path is not None:
            self._watcher = asyncio.create_task(
                self._watch(self.live.path, watch_s), name="config-watch"
            )

    def _on_sighup(self) -> None:
        log.info("reload_signal", signal="SIGHUP")
        self._start("sighup")

    def _start(self, source: str) -> asyncio.Task[object]:
        """A reload runs as its own task: stopping a trigger never cuts a swap halfway."""
        task: asyncio.Task[object] = asyncio.create_task(
            self.live.reload(source), name="config-reload"
        )
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)
        return task

    async def _watch(self, path: str, interval_s: float) -> None:
        seen: tuple[int, int, int] | None = None  # the first poll compares the content
        seen_hash = self.live.current.version
        last = _signature(path)
        while True:
            await asyncio.sleep(interval_s)
            signature = _signature(path)
            settled = signature == last  # not written to since the last poll: not half-written
            last = signature
            if signature is None or signature == seen or not settled:
                continue
            seen = signature
            data = await asyncio.to_thread(_read, path)
            if data is None or file_hash(data) == seen_hash:
                continue  # touched, or rewritten with the same content
            seen_hash = file_hash(data)
            log.info("config_file_changed", path=path, config_hash=seen_hash)
            await asyncio.shield(self._start("watch"))

    async def remove(self) -> None:
        """At shutdown: no more reloads; one under way finishes first."""
        if self._signal:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signal = False
        await cancel_and_wait(self._watcher)
        self._watcher = None
        if self._reloads:
            await asyncio.gather(*self._reloads, return_exceptions=True)
