"""Stopping the gateway's background tasks the same way everywhere."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel `tasks` and wait until they have finished.

    Their own CancelledError is expected and swallowed; if the caller is itself
    being cancelled, that cancellation is re-raised, never lost.
    """
    running = [t for t in tasks if t is not None]
    for task in running:
        task.cancel()
    for task in running:
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
