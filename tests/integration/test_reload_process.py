"""Config reload of a real `python -m gateway serve` process (tree): SIGHUP, `--watch`,
`--workers 2` (the supervisor forwards SIGHUP), and reloads under streaming load.

The simulator runs in this test's event loop; the gateway is a child process. Nothing
sleeps for a fixed time: every wait is for a log event or a response, with a deadline.
"""

from __future__ import annotations

import asyncio
import copy
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from gateway.sim.config import parse_sim_config
from gateway.sim.server import SimCluster
from tests.integration.test_serve_process import ROOT, free_port

pytestmark = pytest.mark.timeout(60)

TEXT = " ".join(f"word{i}" for i in range(30))
STREAM = {"ttft_ms": 0, "itl_ms": 4, "text": TEXT}  # 30 tokens: a stream of about 120 ms
START_TIMEOUT_S = 20.0
RELOAD_TIMEOUT_S = 10.0


@dataclass
class Proc:
    proc: asyncio.subprocess.Process
    port: int
    out: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # JSON log lines (stderr)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def pump(self, stream: asyncio.StreamReader | None, is_log: bool) -> None:
        assert stream is not None
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            if not is_log:
                self.out.append(text)
            elif text.startswith("{"):
                self.events.append(orjson.loads(text))
            self.changed.set()
        self.changed.set()

    def count(self, event: str) -> int:
        return sum(1 for e in self.events if e.get("event") == event)

    async def wait_for(self, done: Callable[[], bool], timeout_s: float = RELOAD_TIMEOUT_S) -> None:
        async with asyncio.timeout(timeout_s):
            while True:
                self.changed.clear()
                if done():
                    return
                if self.proc.returncode is not None:
                    raise AssertionError(f"gateway exited: {self.events[-5:]}")
                await self.changed.wait()


def sim_setup() -> dict[str, Any]:
    models = {"stream": STREAM}
    return {
        "seed": 11,
        "servers": {
            "one": {"kind": "openai", "models": models},
            "two": {"kind": "openai", "models": models},
        },
    }


def gateway_config(sim: SimCluster, port: int, server: str = "one") -> dict[str, Any]:
    return {
        "listen": {"host": "127.0.0.1", "port": port},
        "logging": {"format": "json", "level": "info"},
        "admin": {"key": "admin-secret"},
        "latency": {"prewarm": {"enabled": False}},
        "providers": {"up": {"kind": "openai", "base_url": sim.base_url(server), "api_key": "sim"}},
        "deployments": {"stream": {"provider": "up", "model": "stream"}},
        "routes": {"chat": {"strategy": "fallback", "deployments": ["stream"]}},
    }


def invalid(config: dict[str, Any]) -> dict[str, Any]:
    bad = copy.deepcopy(config)
    bad["routes"]["chat"]["deployments"] = ["stream", "missing"]
    bad["deployments"]["stream"]["idle_timeout_s"] = 0
    return bad


@asynccontextmanager
async def simulators() -> AsyncIterator[SimCluster]:
    config, problems = parse_sim_config(sim_setup())
    assert config is not None, problems
    async with SimCluster(config) as sim:
        yield sim


@asynccontextmanager
async def serve(path: Path, port: int, *args: str) -> AsyncIterator[Proc]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(path),
        "--grace",
        "10",
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    p = Proc(proc, port)
    pumps = asyncio.gather(p.pump(proc.stdout, False), p.pump(proc.stderr, True))
    try:
        await p.wait_for(
            lambda: any(s.startswith("race-gateway listening on") for s in p.out),
            START_TIMEOUT_S,
        )
        yield p
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await pumps
    assert proc.returncode == 0, p.events[-5:]


def chat(model: str, stream: bool = False) -> dict[str, object]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def write(path: Path, config: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(config))


async def status_of(client: aiohttp.ClientSession, url: str, model: str) -> int:
    async with client.post(url + "/v1/chat/completions", json=chat(model)) as resp:
        await resp.read()
        return resp.status


async def test_sighup_reloads_and_an_invalid_config_keeps_the_old_one(tmp_path: Path) -> None:
    path, port = tmp_path / "gateway.yaml", free_port()
    async with simulators() as sim, aiohttp.ClientSession() as client:
        config = gateway_config(sim, port)
        write(path, config)
        async with serve(path, port) as gw:
            assert await status_of(client, gw.url, "chat2") == 404
            bad = invalid(config)
            write(path, bad)
            gw.proc.send_signal(signal.SIGHUP)
            await gw.wait_for(lambda: gw.count("config_reload_refused") == 1)
            refused = next(e for e in gw.events if e.get("event") == "config_reload_refused")
            assert len(refused["problems"]) == 2, refused
            assert any(p.startswith("routes.chat.deployments[1]") for p in refused["problems"])
            assert await status_of(client, gw.url, "chat") == 200  # the old config serves

            good = copy.deepcopy(config)
            good["routes"]["chat2"] = {"deployments": ["stream"]}
            write(path, good)
            gw.proc.send_signal(signal.SIGHUP)
            await gw.wait_for(lambda: gw.count("config_reloaded") == 1)
            reloaded = next(e for e in gw.events if e.get("event") == "config_reloaded")
            assert reloaded["routes_added"] == ["chat2"] and reloaded["source"] == "sighup"
            assert await status_of(client, gw.url, "chat2") == 200
            async with client.get(gw.url + "/metrics") as resp:
                metrics = await resp.text()
            assert 'gateway_config_reloads_total{result="ok"} 1.0' in metrics
            assert 'gateway_config_reloads_total{result="invalid"} 1.0' in metrics
            assert f'gateway_config_info{{hash="{reloaded["config_hash"]}"}} 1.0' in metrics


@pytest.mark.parametrize("workers", [1, 2])
async def test_watch_reloads_when_the_file_changes(tmp_path: Path, workers: int) -> None:
    path, port = tmp_path / "gateway.yaml", free_port()
    async with simulators() as sim, aiohttp.ClientSession() as client:
        config = gateway_config(sim, port)
        write(path, config)
        args = ("--watch", "0.05", "--workers", str(workers))
        async with serve(path, port, *args) as gw:
            good = copy.deepcopy(config)
            good["routes"]["chat2"] = {"deployments": ["stream"]}
            write(path, good)
            await gw.wait_for(lambda: gw.count("config_reloaded") == workers)
            assert {e["source"] for e in gw.events if e.get("event") == "config_reloaded"} == {
                "watch"
            }
            connector = aiohttp.TCPConnector(force_close=True)  # reach every worker
            async with aiohttp.ClientSession(connector=connector) as fresh:
                for _ in range(10):
                    assert await status_of(fresh, gw.url, "chat2") == 200
            write(path, invalid(good))
            await gw.wait_for(lambda: gw.count("config_reload_refused") == workers)
            assert await status_of(client, gw.url, "chat2") == 200


async def test_reloads_under_streaming_load_lose_no_request_and_cut_no_stream(
    tmp_path: Path,
) -> None:
    """2 workers, 6 clients streaming without pause, 20 reloads through the supervisor's
    SIGHUP (14 valid: the upstream switches between two simulators, so the pool in use
    drains each time; 6 invalid): every request succeeds and every stream is whole."""
    path, port = tmp_path / "gateway.yaml", free_port()
    async with simulators() as sim:
        configs = [gateway_config(sim, port, "one"), gateway_config(sim, port, "two")]
        write(path, configs[0])
        async with serve(path, port, "--workers", "2") as gw, aiohttp.ClientSession() as client:
            done = asyncio.Event()
            completed = 0
            progress = asyncio.Event()
            failures: list[str] = []

            async def one_stream() -> None:
                nonlocal completed
                async with client.post(
                    gw.url + "/v1/chat/completions", json=chat("chat", stream=True)
                ) as resp:
                    if resp.status != 200:
                        failures.append(f"status {resp.status}: {await resp.text()}")
                        return
                    text, finished = [], False
                    async for line in resp.content:
                        if line == b"data: [DONE]\n":
                            finished = True
                        elif line.startswith(b"data: {"):
                            chunk = orjson.loads(line[6:])
                            if "error" in chunk:
                                failures.append(f"in-stream error: {chunk['error']}")
                            elif chunk["choices"]:
                                text.append(chunk["choices"][0]["delta"].get("content") or "")
                    if not finished or "".join(text) != TEXT:
                        failures.append(f"cut stream: {''.join(text)!r}, [DONE]: {finished}")
                completed += 1
                progress.set()

            async def client_loop() -> None:
                while not done.is_set():
                    try:
                        await one_stream()
                    except aiohttp.ClientError as exc:
                        failures.append(f"{type(exc).__name__}: {exc}")

            async def requests_complete(n: int) -> None:
                target = completed + n
                async with asyncio.timeout(RELOAD_TIMEOUT_S):
                    while completed < target:
                        progress.clear()
                        await progress.wait()

            clients = [asyncio.create_task(client_loop()) for _ in range(6)]
            try:
                valid = 0
                for i in range(20):
                    await requests_complete(3)  # each reload happens under load
                    if i % 3 == 2:
                        write(path, invalid(configs[valid % 2]))
                        event = "config_reload_refused"
                    else:
                        valid += 1
                        write(path, configs[valid % 2])
                        event = "config_reloaded"
                    expected = gw.count(event) + 2  # one per worker
                    gw.proc.send_signal(signal.SIGHUP)
                    await gw.wait_for(lambda e=event, n=expected: gw.count(e) == n)  # type: ignore[misc]
                await requests_complete(6)
            finally:
                done.set()
                await asyncio.gather(*clients)
            assert failures == []
            assert gw.count("config_reloaded") == 28 and gw.count("config_reload_refused") == 12
            servers = {r.server for r in sim.log.records}
            assert servers == {"one", "two"}
            assert gw.count("config_drained") > 0
