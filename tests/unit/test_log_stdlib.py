"""The standard library's log records as lines of the JSON log (gateway/logs.py)."""

from __future__ import annotations

import io
import logging

import orjson
from aiohttp.http_exceptions import LineTooLong

from gateway.compat_aiohttp import malformed_http_status
from gateway.logs import StdlibJsonLines, stdlib_fields


def record_of(
    message: str, exc: BaseException | None, level: int = logging.ERROR
) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("aiohttp.server", level, __file__, 1, message, (), exc_info)


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_a_bug_keeps_its_traceback_in_one_field() -> None:
    fields = stdlib_fields(
        record_of("Unhandled exception", raised(KeyError("k"))), malformed_http_status
    )
    assert fields["event"] == "Unhandled exception" and fields["level"] == "error"
    assert fields["error"] == "KeyError" and fields["logger"] == "aiohttp.server"
    assert "Traceback" in fields["exception"] and "raise exc" in fields["exception"]


def test_malformed_http_names_the_error_without_the_clients_bytes() -> None:
    exc = raised(LineTooLong(b"secret-bytes" * 10, "8190"))
    record = record_of("Error handling request from 1.2.3.4", exc)
    assert stdlib_fields(record)["event"] == "Error handling request from 1.2.3.4"
    fields = stdlib_fields(record, malformed_http_status)
    assert fields["event"] == "bad_http_request" and fields["level"] == "info"
    assert fields["error"] == "LineTooLong" and fields["status"] == 400
    assert b"secret-bytes" not in orjson.dumps(fields)


def test_the_handler_writes_one_line_a_record_at_its_level() -> None:
    stream = io.BytesIO()
    handler = StdlibJsonLines(stream, logging.WARNING)
    logger = logging.getLogger("test-log-stdlib")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.info("not written")
        try:
            raise ValueError("multi\nline")
        except ValueError:
            logger.exception("failed %s", "here")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    fields = orjson.loads(lines[0])
    assert fields["event"] == "failed here" and fields["error"] == "ValueError"
    assert fields["timestamp"].endswith("Z")
