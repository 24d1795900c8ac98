"""structlog set-up: JSON lines in production, console in a terminal. Configure once."""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any, BinaryIO, cast

import orjson
import structlog

from gateway import log_writer
from gateway.log_writer import BackgroundLines

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
# Where `info_line` writes, when logs are JSON lines and info is not filtered out: the one
# line every request writes skips structlog's processor chain (12 us a line against 1).
_json_info_stream: IO[bytes] | None = None
_json_renderer: Any = None  # the renderer configure_logging set up, to see it still rules
_second = -1  # the second `_second_text` spells, formatted once a second
_second_text = ""
_background: BackgroundLines | None = None  # stderr's lines, written off the loop
MAX_STDLIB_MESSAGE = 500
MAX_STDLIB_TRACEBACK = 8000


# What a client's malformed HTTP looks like in a log record: the status the server answered
# it with, None for anything else (`compat_aiohttp.malformed_http_status` for aiohttp's).
Refusal = Callable[[BaseException], int | None]


def configure_logging(
    fmt: str = "auto", level: str = "info", background: bool = False, refusal: Refusal | None = None
) -> None:
    """`background` (a server): JSON lines are written by a thread, never by the event
    loop, so that a stalled reader of stderr stalls no request (gateway/log_writer.py).
    `refusal` names the standard library's records that are a client's malformed HTTP."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    stream = None if use_console else _json_stream(background)
    if stream is None:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
        factory: Callable[..., Any] = structlog.PrintLoggerFactory(sys.stderr)
    else:
        processors.append(structlog.processors.JSONRenderer(serializer=orjson.dumps))
        factory = structlog.BytesLoggerFactory(stream)
    global _json_info_stream, _json_renderer
    _json_renderer = processors[-1]
    json_info = _LEVELS.get(level, logging.INFO) <= logging.INFO
    _json_info_stream = stream if json_info else None
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    _bridge_stdlib(stream, level, refusal)


class StdlibJsonLines(logging.Handler):
    """The standard library's log records (aiohttp's, asyncio's) as lines of the JSON log:
    one line each, never a multi-line traceback. A client's malformed HTTP (aiohttp logs
    it as an error with a traceback that echoes the client's bytes) is one info line,
    `bad_http_request`, with the error's name and status and none of those bytes."""

    def __init__(self, stream: BinaryIO, level: int, refusal: Refusal | None = None) -> None:
        super().__init__(level)
        self.stream = stream
        self.refusal = refusal

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(json_line(stdlib_fields(record, self.refusal)))
            self.stream.flush()
        except Exception:
            self.handleError(record)


def stdlib_fields(record: logging.LogRecord, refusal: Refusal | None = None) -> dict[str, Any]:
    exc = record.exc_info[1] if record.exc_info else None
    status = refusal(exc) if refusal is not None and exc is not None else None
    if status is not None:
        fields: dict[str, Any] = {
            "event": "bad_http_request",
            "error": type(exc).__name__,
            "status": status,
            "logger": record.name,
        }
        return stamped(fields, "info", record.created)
    fields = {"event": record.getMessage()[:MAX_STDLIB_MESSAGE], "logger": record.name}
    if exc is not None:
        fields["error"] = type(exc).__name__
        text = "".join(traceback.format_exception(exc))
        fields["exception"] = text[-MAX_STDLIB_TRACEBACK:]
    return stamped(fields, record.levelname.lower(), record.created)


def _bridge_stdlib(stream: BinaryIO | None, level: str, refusal: Refusal | None) -> None:
    """JSON logs: the root logger writes through `StdlibJsonLines` (its level at least
    warning: aiohttp and asyncio say little worth a line below it). Console: Python's own
    handling (tracebacks on stderr)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StdlibJsonLines)]:
        root.removeHandler(handler)
    if stream is not None:
        threshold = max(_LEVELS.get(level, logging.INFO), logging.WARNING)
        root.addHandler(StdlibJsonLines(stream, threshold, refusal))


def log_lines_dropped() -> int:
    """Lines this process's log dropped because its reader fell behind (log_writer)."""
    return _background.dropped_total if _background is not None else 0


def _json_stream(background: bool) -> BinaryIO:
    global _background
    if not background:
        return sys.stderr.buffer
    if _background is None or _background.target is not sys.stderr.buffer:
        _background = log_writer.background(sys.stderr.buffer)
    return cast(BinaryIO, _background)


def info_line(event: str, fields: dict[str, Any]) -> bool:
    """Write `fields` as the JSON line `structlog.get_logger().info(event, **fields)` would
    (the same keys in the same order: the fields, `event`, the context-bound variables,
    `level`, an ISO UTC `timestamp`), directly. False, with nothing written, when logs are
    not JSON lines at info level, or structlog was configured since (a test capturing
    logs): the caller then logs through structlog."""
    stream = _json_info_stream
    if stream is None:
        return False
    processors = structlog.get_config()["processors"]
    if not processors or processors[-1] is not _json_renderer:
        return False
    fields["event"] = event
    for name, value in structlog.contextvars.get_contextvars().items():
        fields.setdefault(name, value)
    stream.write(json_line(stamped(fields, "info", time.time())))
    stream.flush()
    return True


def stamped(fields: dict[str, Any], level: str, at: float) -> dict[str, Any]:
    """`fields` ended as every JSON log line ends: `level`, then the ISO UTC `timestamp`
    of `at` (seconds since the epoch)."""
    fields["level"] = level
    fields["timestamp"] = utc_timestamp(at)
    return fields


def json_line(fields: dict[str, Any]) -> bytes:
    return orjson.dumps(fields) + b"\n"


def utc_timestamp(now: float) -> str:
    """`now` (seconds since the epoch) as structlog's ISO UTC timestamp spells it, e.g.
    `2026-12-06T12:35:24.612099Z` (`datetime.isoformat`, which leaves out a zero
    fraction), with the date and time formatted once a second instead of per line."""
    global _second, _second_text
    second = int(now)
    micro = round((now - second) * 1_000_000)  # half to even, as datetime rounds
    if micro == 1_000_000:
        second, micro = second + 1, 0
    if second != _second:
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = second
    return f"{_second_text}.{micro:06d}Z" if micro else _second_text + "Z"
