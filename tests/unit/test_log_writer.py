"""The log's writer thread: batches per loop iteration, a bounded backlog, nothing blocks."""

from __future__ import annotations

import asyncio
import threading

import orjson
import pytest

from gateway import logs
from gateway.log_writer import BATCH_BYTES, BackgroundLines
from gateway.metrics import GatewayMetrics


class Recorder:
    """A stream that records its writes; `gate` cleared makes every write block on it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # a write has started

    def write(self, data: bytes) -> int:
        self.entered.set()
        self.gate.wait()
        self.writes.append(data)
        return len(data)

    def flush(self) -> None:
        pass


def lines_of(stream: Recorder) -> list[bytes]:
    return b"".join(stream.writes).splitlines()


async def test_one_write_per_batch_in_order() -> None:
    stream = Recorder()
    out = BackgroundLines(stream, batch_s=0)  # type: ignore[arg-type]
    for i in range(3):
        out.write(b"a%d\n" % i)
        out.flush()
    await asyncio.sleep(0)  # the window (here: this loop iteration) ends: one batch
    await asyncio.sleep(0)
    out.write(b"b\n")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    big = b"c" * (BATCH_BYTES - 2) + b"\n"
    out.write(b"d\n")
    out.write(big)  # 64 KiB waiting: handed over at once, before its window ends
    assert out._batch == []
    out.close()
    assert stream.writes == [b"a0\na1\na2\n", b"b\n", b"d\n" + big]


def test_lines_written_with_no_loop_go_at_once() -> None:
    stream = Recorder()
    out = BackgroundLines(stream)  # type: ignore[arg-type]
    out.write(b"one\n")
    out.write(b"two\n")
    out.close()
    assert lines_of(stream) == [b"one", b"two"]
    out.write(b"after close\n")  # the stream took writes: later ones go straight to it
    assert lines_of(stream)[-1] == b"after close"


async def test_a_blocked_stream_drops_beyond_the_bound_and_says_how_many() -> None:
    stream = Recorder()
    stream.gate.clear()  # the reader stalls: the thread's first write blocks
    out = BackgroundLines(stream, max_pending_bytes=1000, batch_s=0)  # type: ignore[arg-type]
    line = b"x" * 99 + b"\n"
    for _ in range(30):  # 3000 bytes, a batch each, while nothing is written
        out.write(line)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert await asyncio.to_thread(stream.entered.wait, 10)
    assert out.dropped_total == 20  # 10 lines fit in the bound, the rest were dropped
    stream.gate.set()
    out.close()
    written = lines_of(stream)
    assert written[:10] == [line.rstrip()] * 10
    report = orjson.loads(written[10])
    assert report["event"] == "log_lines_dropped" and report["count"] == 20
    assert report["level"] == "warning" and len(written) == 11


async def test_close_gives_up_on_a_stream_that_never_takes_its_write() -> None:
    stream = Recorder()
    stream.gate.clear()
    out = BackgroundLines(stream, batch_s=0)  # type: ignore[arg-type]
    out.write(b"held\n")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await asyncio.to_thread(stream.entered.wait, 10)
    out.close(wait_s=0.05)  # returns although the write is still blocked
    out.write(b"dropped\n")  # would block the caller if it went to the stream
    stream.gate.set()
    thread = out._thread
    assert thread is not None
    await asyncio.to_thread(thread.join, 10)
    assert not thread.is_alive() and stream.writes == [b"held\n"]


async def test_the_dropped_lines_are_a_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = Recorder()
    stream.gate.clear()
    out = BackgroundLines(stream, max_pending_bytes=10, batch_s=0)  # type: ignore[arg-type]
    monkeypatch.setattr(logs, "_background", out)
    out.write(b"first line, held\n")  # over the bound on its own: dropped
    out.write(b"second\n")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    text = GatewayMetrics().render().decode()
    assert "gateway_log_lines_dropped_total 2.0" in text
    stream.gate.set()
    out.close()
