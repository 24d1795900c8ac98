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


def reraise_if_cancelled(exc: BaseException) -> None:
    """Raise CancelledError (from `exc`) when the current task is being cancelled.

    Some clients turn the CancelledError delivered during a command into their own
    error (redis-py: "Connection closed by server."). An `except Exception` around
    such a call would swallow the cancellation, and a background loop would never
    stop; call this first in those handlers.
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop: nothing can be cancelling
        return
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from exc
