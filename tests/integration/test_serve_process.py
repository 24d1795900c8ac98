"""`python -m gateway serve` as a real process (tree): SO_REUSEPORT workers under a
supervisor, restarts, and the drain on SIGTERM that lets a stream in flight finish.

The simulator runs in this test's event loop (SimCluster); the gateway is a child
process started with `--workers N`. Nothing sleeps for a fixed time: every wait
polls with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest
import yaml

from gateway.sim.config import parse_sim_config
from gateway.sim.server import SimCluster

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
SLOW = {"ttft_ms": 0, "itl_ms": 50, "tokens": 40}  # a 2-second stream
FAST = {"ttft_ms": 0, "itl_ms": 0, "tokens": 3}
GRACE_S = 10.0
START_TIMEOUT_S = 20.0
WORKER_HEADER = "x-gateway-worker"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class GatewayProcess:
    proc: asyncio.subprocess.Process
    port: int
    lines: list[str] = field(default_factory=list)
    err: bytearray = field(default_factory=bytearray)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.err[-4000:].decode(errors="replace")

    async def pump(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self.changed.set()
        self.changed.set()

    async def pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self.err += chunk

    async def wait_line(self, match: Callable[[str], bool], timeout_s: float) -> str:
        """The first stdout line (old or new) that matches, within the deadline."""
        async with asyncio.timeout(timeout_s):
            while True:
                self.changed.clear()
                for line in self.lines:
                    if match(line):
                        return line
                if self.proc.returncode is not None:
                    raise AssertionError(f"gateway exited early:\n{self.stderr()}")
                await self.changed.wait()

    async def worker_pids(self) -> set[int]:
        line = await self.wait_line(lambda s: "workers (pids" in s, START_TIMEOUT_S)
        return {int(p) for p in re.findall(r"\d+", line.split("(pids", 1)[1])}


def write_config(directory: Path, sim_url: str, port: int) -> Path:
    config = {
        "listen": {"host": "127.0.0.1", "port": port},
        "logging": {"format": "json", "level": "info"},
        "latency": {"prewarm": {"enabled": False}},
        "providers": {"sim": {"kind": "openai", "base_url": sim_url, "api_key": "sim-key"}},
        "deployments": {
            "slow": {"provider": "sim", "model": "slow"},
            "fast": {"provider": "sim", "model": "fast"},
        },
        "routing": {"allow_direct_deployments": True},
    }
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@asynccontextmanager
async def sim_cluster() -> AsyncIterator[SimCluster]:
    config, problems = parse_sim_config(
        {"seed": 3, "servers": {"sim": {"kind": "openai", "models": {"slow": SLOW, "fast": FAST}}}}
    )
    assert config is not None, problems
    async with SimCluster(config) as cluster:
        yield cluster


@asynccontextmanager
async def gateway_process(
    tmp_path: Path,
    sim: SimCluster,
    workers: int,
    grace_s: float = GRACE_S,
    read_stderr: bool = True,
) -> AsyncIterator[GatewayProcess]:
    port = free_port()
    config = write_config(tmp_path, sim.base_url("sim"), port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(config),
        "--workers",
        str(workers),
        "--grace",
        str(grace_s),
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    gw = GatewayProcess(proc, port)
    pumps = asyncio.gather(gw.pump(), gw.pump_stderr() if read_stderr else asyncio.sleep(0))
    try:
        await gw.wait_line(lambda s: s.startswith("race-gateway listening on"), START_TIMEOUT_S)
        yield gw
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(GRACE_S + 10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await pumps


def chat_body(model: str, stream: bool) -> dict[str, object]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def content_of(line: bytes) -> str:
    """The text delta of an SSE data line ('' for other lines)."""
    if not line.startswith(b"data: {"):
        return ""
    choices = orjson.loads(line[6:])["choices"]
    return str(choices[0]["delta"].get("content") or "") if choices else ""


async def worker_of_new_connection(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url + "/healthz") as resp:
        assert resp.status == 200
        return int(resp.headers[WORKER_HEADER])


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:  # reached the backlog as the listener closed: ask again
        return False
    writer.close()
    return False


async def test_two_workers_share_one_port(tmp_path: Path) -> None:
    async with sim_cluster() as sim, gateway_process(tmp_path, sim, workers=2) as gw:
        pids = await gw.worker_pids()
        assert len(pids) == 2 and gw.proc.pid not in pids
        seen: set[int] = set()
        # a new connection each time: the kernel spreads them over both listeners
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(200):
                seen.add(await worker_of_new_connection(session, gw.url))
                if seen == pids:
                    break
            assert seen == pids
            async with session.post(
                gw.url + "/v1/chat/completions", json=chat_body("fast", False)
            ) as resp:
                assert resp.status == 200, await resp.text()
                assert int(resp.headers[WORKER_HEADER]) in pids
                assert (await resp.json())["choices"][0]["message"]["content"]


async def test_supervisor_restarts_a_worker_that_dies(tmp_path: Path) -> None:
    async with sim_cluster() as sim, gateway_process(tmp_path, sim, workers=2) as gw:
        pids = await gw.worker_pids()
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)

        def new_listener(line: str) -> bool:
            m = re.match(r"race-gateway worker \d+/2 pid (\d+) listening", line)
            return m is not None and int(m.group(1)) not in pids

        line = await gw.wait_line(new_listener, START_TIMEOUT_S)
        replacement = int(line.split(" pid ")[1].split()[0])
        survivors = (pids - {victim}) | {replacement}
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            seen: set[int] = set()
            for _ in range(200):
                seen.add(await worker_of_new_connection(session, gw.url))
                if replacement in seen:
                    break
            assert replacement in seen and seen <= survivors
        gw.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(GRACE_S + 5):
            assert await gw.proc.wait() == 0


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_lets_the_stream_in_flight_finish(tmp_path: Path, workers: int) -> None:
    async with (
        sim_cluster() as sim,
        gateway_process(tmp_path, sim, workers) as gw,
        aiohttp.ClientSession() as session,
    ):
        async with session.post(
            gw.url + "/v1/chat/completions", json=chat_body("slow", True)
        ) as resp:
            assert resp.status == 200
            lines: list[bytes] = []
            async for line in resp.content:  # up to the first token: the stream is in flight
                lines.append(line)
                if content_of(line):
                    break
            signalled = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)

            async def rest() -> None:
                async for line in resp.content:
                    lines.append(line)

            reader = asyncio.create_task(rest())
            for _ in range(250):  # new connections are refused at once...
                if await refused(gw.port):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the gateway still accepts connections 5 s after SIGTERM")
            assert not reader.done(), "the stream ended before the listener closed"
            await reader  # ...while the stream in flight goes on to its end
        events = [line.strip() for line in lines if line.startswith(b"data: ")]
        assert events[-1] == b"data: [DONE]"
        assert sum(1 for line in lines if content_of(line)) == SLOW["tokens"]
        async with asyncio.timeout(GRACE_S + 5):
            code = await gw.proc.wait()
        assert code == 0, gw.stderr()
        assert time.monotonic() - signalled < GRACE_S, "the drain took the whole grace period"
        assert await refused(gw.port)


async def test_streams_still_open_after_the_grace_period_are_cut(tmp_path: Path) -> None:
    async with (
        sim_cluster() as sim,
        gateway_process(tmp_path, sim, workers=1, grace_s=0.3) as gw,
        aiohttp.ClientSession() as session,
    ):
        lines: list[bytes] = []
        async with session.post(
            gw.url + "/v1/chat/completions", json=chat_body("slow", True)
        ) as resp:
            assert resp.status == 200
            async for line in resp.content:
                lines.append(line)
                if content_of(line):
                    break
            gw.proc.send_signal(signal.SIGTERM)
            with pytest.raises(aiohttp.ClientPayloadError):
                async for line in resp.content:
                    lines.append(line)
        assert b"data: [DONE]\n" not in lines
        assert 0 < sum(1 for line in lines if content_of(line)) < SLOW["tokens"]
        async with asyncio.timeout(GRACE_S):
            assert await gw.proc.wait() == 0, gw.stderr()
        log = gw.stderr()
        assert "shutdown_cut_streams" in log
        # the cut request was accounted (and logged) before the gateway closed
        assert log.index('"event":"request"') < log.rindex("shutdown_done")


async def test_a_stalled_log_reader_stalls_no_request(tmp_path: Path) -> None:
    """Nobody reads the gateway's stderr (a log collector that fell behind): once the
    pipe's 64 KiB are full a write to it blocks, and the access log still writes a line per
    request. Every request is answered all the same, and no line is lost: they are all
    there once the pipe is read again."""
    # about 500 KB of access log: the pipe (64 KiB) and what asyncio's subprocess transport
    # reads ahead of this test (128 KiB) are full after about 450
    requests = 1200
    async with (
        sim_cluster() as sim,
        gateway_process(tmp_path, sim, workers=1, read_stderr=False) as gw,
        aiohttp.ClientSession() as session,
    ):

        async def one(i: int) -> int:
            body = {**chat_body("fast", False), "user": f"u{i}"}
            async with session.post(gw.url + "/v1/chat/completions", json=body) as resp:
                await resp.read()
                return resp.status

        statuses: list[int] = []
        async with asyncio.timeout(30):  # blocked on its log, the gateway answers none
            for start in range(0, requests, 20):
                statuses += await asyncio.gather(*(one(i) for i in range(start, start + 20)))
        assert statuses == [200] * requests
        assert gw.proc.stderr is not None
        seen = 0
        async with asyncio.timeout(30):
            while seen < requests:
                line = await gw.proc.stderr.readline()
                assert line, "stderr ended early"
                if b'"event":"request"' in line:
                    seen += 1
        assert seen == requests


async def test_malformed_http_is_one_json_line_without_the_clients_bytes(tmp_path: Path) -> None:
    """aiohttp refuses malformed HTTP itself and logs it as an error with a traceback that
    quotes the offending bytes. The gateway's log stays JSON lines, one per event; the
    refusal is an info line that names the error, and the client's bytes are not in it."""
    marker = "sk-hostile-4b1d"
    payloads = [
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\nX-Secret: " + marker.encode() + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + marker.encode() * 2000 + b"\r\n\r\n",
    ]
    async with sim_cluster() as sim, gateway_process(tmp_path, sim, workers=1) as gw:
        for payload in payloads:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(payload)
            status_line = await reader.readline()
            assert status_line.startswith(b"HTTP/1.") and b" 400 " in status_line
            writer.close()
        proc = gw.proc
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(GRACE_S + 10):
            await proc.wait()
    lines = bytes(gw.err).splitlines()
    records = [orjson.loads(line) for line in lines]  # every line is one JSON object
    refused = [r for r in records if r["event"] == "bad_http_request"]
    assert [(r["error"], r["status"], r["level"]) for r in refused] == [
        ("BadHttpMessage", 400, "info"),
        ("LineTooLong", 400, "info"),
    ]
    assert marker.encode() not in bytes(gw.err)
