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


def raise_if_cancelling(cause: BaseException | None = None) -> None:
    """Raise CancelledError when the current task has been asked to cancel.

    Some clients swallow the CancelledError delivered during a command (redis-py
    returns normally, or raises its own ConnectionError: "Connection closed by
    server."). A background loop would then carry on, and whoever waits for it to
    stop would wait forever: call this after such calls and in their error handlers.
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop: nothing can be cancelling
        return
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from cause
