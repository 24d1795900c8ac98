"""An aiohttp StreamReader fed by hand, as aiohttp's parser feeds a response's body."""

from __future__ import annotations

import asyncio

from aiohttp.streams import StreamReader


class _Protocol:
    _reading_paused = False

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self, resume_parser: bool = True) -> None:
        self._reading_paused = False


def reader() -> StreamReader:
    return StreamReader(_Protocol(), 1 << 16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
