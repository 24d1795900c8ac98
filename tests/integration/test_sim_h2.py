"""Simulated providers over HTTP/2 (`http2: true`), driven by the `h2` library as a client
over real sockets: the same app as HTTP/1.1 (framing, errors, faults, the log), per-stream
cancellation, flow control, TLS with ALPN, and a stop that leaves nothing running."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.settings import SettingCodes

from gateway.sim.config import SimConfig, parse_sim_config
from gateway.sim.log import SimRecord
from gateway.sim.server import SimCluster

FAST = {"ttft_ms": 5, "itl_ms": 0, "tokens": 4}
MODELS = {
    "fast": FAST,
    "long": {**FAST, "tokens": 200, "itl_ms": 1},  # ~200 ms of tokens, a body of ~30 kB
    "trickle": {**FAST, "tokens": 500, "itl_ms": 20},  # 10 s: reset long before it ends
    "waiting": {**FAST, "ttft_ms": 500},
    "slow": {**FAST, "ttft_ms": 30000},
    "limited": {**FAST, "error_rate_429": 1.0, "retry_after_s": 3},
    "cutter": {**FAST, "cut_rate": 1.0, "tokens": 6},
}
OPENAI_HEADERS = [("authorization", "Bearer x"), ("content-type", "application/json")]
TIMEOUT_S = 10.0


def sim_config(**server: Any) -> SimConfig:
    config, problems = parse_sim_config(
        {
            "seed": 3,
            "servers": {
                "oa": {"kind": "openai", "http2": True, "handshake_ms": 5, "models": MODELS}
                | server
            },
        }
    )
    assert config is not None, problems
    return config


def chat(model: str, **extra: Any) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return orjson.dumps(body)


# --- an HTTP/2 client: h2 over an asyncio stream ------------------------------------------


@dataclass
class Exchange:
    """One stream as the client sees it."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    reset: ErrorCodes | int | None = None
    data_seen: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class H2Client:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: str
    ) -> None:
        self.reader, self.writer, self.authority = reader, writer, authority
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.exchanges: dict[int, Exchange] = {}
        self.goaway: ConnectionTerminated | None = None
        self.closed = asyncio.Event()

    async def start(self, settings: dict[int, int]) -> None:
        self.h2.initiate_connection()
        if settings:
            self.h2.update_settings(settings)
        await self.flush()
        self._task = asyncio.create_task(self._read())

    async def flush(self) -> None:
        self.writer.write(self.h2.data_to_send())
        await self.writer.drain()

    async def _read(self) -> None:
        try:
            while data := await self.reader.read(65536):
                for event in self.h2.receive_data(data):
                    self._on(event)
                await self.flush()
        except ConnectionError:
            pass
        finally:
            self.closed.set()
            for exchange in self.exchanges.values():
                exchange.ended.set()

    def _on(self, event: object) -> None:
        if isinstance(event, ResponseReceived):
            fields = {k.decode(): v.decode() for k, v in event.headers}
            self.exchanges[event.stream_id].status = int(fields.pop(":status"))
            self.exchanges[event.stream_id].headers = fields
        elif isinstance(event, DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            exchange = self.exchanges[event.stream_id]
            exchange.body += event.data
            exchange.data_seen.set()
        elif isinstance(event, StreamEnded):
            self.exchanges[event.stream_id].ended.set()
        elif isinstance(event, StreamReset):
            self.exchanges[event.stream_id].reset = event.error_code
            self.exchanges[event.stream_id].ended.set()
        elif isinstance(event, ConnectionTerminated):
            self.goaway = event

    async def post(self, path: str, body: bytes) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        self.exchanges[stream_id] = Exchange()
        head = [(":method", "POST"), (":path", path), (":scheme", "http")]
        head += [(":authority", self.authority), *OPENAI_HEADERS]
        self.h2.send_headers(stream_id, [(k.encode(), v.encode()) for k, v in head])
        self.h2.send_data(stream_id, body, end_stream=True)
        await self.flush()
        return stream_id

    async def response(self, stream_id: int) -> Exchange:
        exchange = self.exchanges[stream_id]
        async with asyncio.timeout(TIMEOUT_S):
            await exchange.ended.wait()
        return exchange

    async def reset(self, stream_id: int) -> None:
        self.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
        await self.flush()

    async def close(self) -> None:
        if not self.closed.is_set():
            self.h2.close_connection()
            with contextlib.suppress(ConnectionError):
                await self.flush()
        self.writer.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def h2_client(
    sim: SimCluster,
    *,
    tls: ssl.SSLContext | None = None,
    settings: dict[int, int] | None = None,
) -> AsyncIterator[H2Client]:
    info = sim.servers["oa"]
    server_hostname = "localhost" if tls is not None else None
    reader, writer = await asyncio.open_connection(
        info.host, info.port, ssl=tls, server_hostname=server_hostname
    )
    client = H2Client(reader, writer, f"{info.host}:{info.port}")
    await client.start(settings or {})
    try:
        yield client
    finally:
        await client.close()


def sse_events(body: bytes) -> list[str]:
    assert body.endswith(b"\n\n"), body[-80:]
    return body.decode().split("\n\n")[:-1]


def assert_openai_stream(exchange: Exchange) -> None:
    assert exchange.status == 200 and exchange.reset is None
    assert exchange.headers["content-type"].startswith("text/event-stream")
    assert "transfer-encoding" not in exchange.headers  # HTTP/2 frames the body itself
    events = sse_events(bytes(exchange.body))
    assert all(e.startswith("data: ") and "\n" not in e for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"


async def finished(sim: SimCluster, count: int) -> list[SimRecord]:
    """The log once `count` requests have ended (a handler records its end after the
    client has its last byte)."""
    done = lambda recs: len(recs) == count and all(r.end is not None for r in recs)  # noqa: E731
    return sorted(await sim.log.wait_for(done), key=lambda r: r.seq)


def one(records: list[SimRecord], model: str) -> SimRecord:
    found = [r for r in records if r.model == model]
    assert len(found) == 1, records
    return found[0]


@pytest.fixture
async def sim() -> AsyncIterator[SimCluster]:
    async with SimCluster(sim_config()) as cluster:
        yield cluster


# --- the tests ------------------------------------------------------------------------------


async def test_streamed_openai_chat_over_h2c(sim: SimCluster) -> None:
    info = sim.servers["oa"]
    assert info.http2 and not info.tls and info.base_url.startswith("http://")
    async with h2_client(sim) as client:
        exchange = await client.response(
            await client.post("/v1/chat/completions", chat("fast", stream=True))
        )
    assert_openai_stream(exchange)
    (record,) = await finished(sim, 1)
    assert (record.outcome, record.status, record.tokens_sent) == ("completed", 200, 4)
    assert record.new_connection and record.handshake_ms == 5.0


async def test_concurrent_streams_share_one_connection(sim: SimCluster) -> None:
    async with h2_client(sim) as client:
        first = await client.post("/v1/chat/completions", chat("waiting", stream=True))
        second = await client.post("/v1/chat/completions", chat("long", stream=True))
        for exchange in [await client.response(first), await client.response(second)]:
            assert_openai_stream(exchange)
    a, b = await finished(sim, 2)
    assert [a.outcome, b.outcome] == ["completed", "completed"]
    assert a.connection_id == b.connection_id
    assert (a.new_connection, b.new_connection) == (True, False)  # one handshake
    # both were being served at once: the second arrived before the first had finished
    assert a.end is not None and b.arrival < a.end


async def test_client_reset_ends_only_that_stream(sim: SimCluster) -> None:
    async with h2_client(sim) as client:
        doomed = await client.post("/v1/chat/completions", chat("trickle", stream=True))
        sibling = await client.post("/v1/chat/completions", chat("long", stream=True))
        await sim.log.wait_for(
            lambda recs: any(r.model == "trickle" and r.tokens_sent > 0 for r in recs)
        )
        await client.reset(doomed)  # RST_STREAM(CANCEL) mid-stream
        records = await sim.log.wait_for(
            lambda recs: any(r.outcome == "client_disconnect" for r in recs)
        )
        cancelled = one(records, "trickle")
        assert cancelled.disconnect is not None and cancelled.end is not None
        assert 0 < cancelled.tokens_sent < 500
        assert_openai_stream(await client.response(sibling))
        # the connection goes on: a stream opened after the reset completes on it
        after = await client.response(
            await client.post("/v1/chat/completions", chat("fast", stream=True))
        )
        assert_openai_stream(after)
    records = await finished(sim, 3)
    assert {r.connection_id for r in records} == {cancelled.connection_id}
    assert sorted(r.outcome for r in records) == [
        "client_disconnect",
        "completed",
        "completed",
    ]


async def test_error_reply_keeps_its_status(sim: SimCluster) -> None:
    async with h2_client(sim) as client:
        exchange = await client.response(
            await client.post("/v1/chat/completions", chat("limited", stream=True))
        )
        missing = await client.response(await client.post("/v1/nowhere", chat("fast")))
    assert exchange.status == 429 and exchange.headers["retry-after"] == "3"
    assert json.loads(exchange.body)["error"]["code"] == "rate_limit_exceeded"
    assert int(exchange.headers["content-length"]) == len(exchange.body)
    assert missing.status == 404  # aiohttp's own routing answers, as on HTTP/1.1
    assert [r.outcome for r in await finished(sim, 1)] == ["error_429"]


async def test_cut_resets_the_stream_and_keeps_the_connection(sim: SimCluster) -> None:
    async with h2_client(sim) as client:
        cut = await client.response(
            await client.post("/v1/chat/completions", chat("cutter", stream=True))
        )
        assert cut.status == 200 and cut.reset == ErrorCodes.INTERNAL_ERROR
        assert b"data: " in cut.body and b"[DONE]" not in cut.body
        assert_openai_stream(
            await client.response(
                await client.post("/v1/chat/completions", chat("fast", stream=True))
            )
        )
    assert [r.outcome for r in await finished(sim, 2)] == ["cut", "completed"]


async def test_small_client_window_is_respected(sim: SimCluster) -> None:
    # a 100-byte stream window: the ~30 kB answer needs hundreds of WINDOW_UPDATEs
    async with h2_client(sim, settings={SettingCodes.INITIAL_WINDOW_SIZE: 100}) as client:
        exchange = await client.response(
            await client.post("/v1/chat/completions", chat("long", stream=True))
        )
    assert_openai_stream(exchange)
    assert len(exchange.body) > 100 * 50


async def test_stop_says_goaway_and_cancels_handlers() -> None:
    cluster = SimCluster(sim_config())
    await cluster.start()
    try:
        async with h2_client(cluster) as client:
            stream = await client.post("/v1/chat/completions", chat("slow", stream=True))
            await cluster.log.wait_for(lambda recs: any(r.status == 200 for r in recs))
            h2_server = cluster._h2_servers[0]
            await cluster.stop()
            exchange = await client.response(stream)
            async with asyncio.timeout(TIMEOUT_S):
                await client.closed.wait()
    finally:
        await cluster.stop()
    assert client.goaway is not None and client.goaway.error_code == ErrorCodes.NO_ERROR
    assert exchange.ended.is_set() and b"[DONE]" not in exchange.body
    (record,) = cluster.log.records
    assert record.outcome == "client_disconnect" and record.end is not None
    assert not h2_server.tasks and not h2_server.connections


# --- TLS ------------------------------------------------------------------------------------


def client_context(cert: Path, alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.set_alpn_protocols(alpn)
    return context


async def test_h2_over_tls_with_alpn(certificate: tuple[Path, Path]) -> None:
    key, cert = certificate
    async with SimCluster(sim_config(tls_cert=str(cert), tls_key=str(key))) as sim:
        info = sim.servers["oa"]
        assert info.tls and info.http2 and info.base_url.startswith("https://")
        async with h2_client(sim, tls=client_context(cert, ["h2", "http/1.1"])) as client:
            tls_object = client.writer.get_extra_info("ssl_object")
            assert tls_object.selected_alpn_protocol() == "h2"
            exchange = await client.response(
                await client.post("/v1/chat/completions", chat("fast", stream=True))
            )
        assert_openai_stream(exchange)
        (record,) = await finished(sim, 1)
        assert record.outcome == "completed"


async def test_tls_without_http2_serves_http11(certificate: tuple[Path, Path]) -> None:
    key, cert = certificate
    config = sim_config(http2=False, tls_cert=str(cert), tls_key=str(key))
    async with SimCluster(config) as sim, aiohttp.ClientSession() as http:
        info = sim.servers["oa"]
        assert info.tls and not info.http2
        url = info.base_url.replace(info.host, "localhost") + "/chat/completions"
        async with http.post(
            url,
            data=chat("fast", stream=True),
            headers=dict(OPENAI_HEADERS),
            ssl=client_context(cert, ["http/1.1"]),
        ) as resp:
            assert resp.status == 200 and resp.version == aiohttp.HttpVersion11
            assert (await resp.read()).endswith(b"data: [DONE]\n\n")
        (record,) = await finished(sim, 1)
        # over TLS the handshake is paid where a client pays it, in the TLS handshake (its
        # connect returns once it is done), not by the first request
        assert (record.new_connection, record.handshake_ms) == (True, 5.0)
        assert record.handshake_wait_ms == 0.0


async def test_stopping_drops_tls_handshakes_still_due(certificate: tuple[Path, Path]) -> None:
    key, cert = certificate
    config = sim_config(http2=False, handshake_ms=60_000, tls_cert=str(cert), tls_key=str(key))
    sim = SimCluster(config)
    await sim.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.servers["oa"].port)
    writer.write(b"\x16\x03\x01")  # the start of a ClientHello, held by the server
    await writer.drain()
    await sim.stop()
    async with asyncio.timeout(5):
        try:
            assert await reader.read() == b""  # the server closed it
        except ConnectionResetError:
            pass  # or reset it
    writer.close()
    left = [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "") == "_Handshaking._handshake"
    ]
    assert left == []


# --- config ---------------------------------------------------------------------------------


def server_problems(tmp_path: Path, **server: Any) -> list[str]:
    config, problems = parse_sim_config(
        {"servers": {"oa": {"kind": "openai", "models": {"m": {}}, **server}}}
    )
    assert config is None
    return problems


def test_config_wants_both_tls_files(tmp_path: Path) -> None:
    pem = tmp_path / "cert.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    assert server_problems(tmp_path, tls_cert=str(pem)) == [
        "sim.servers.oa.tls_key: is required with tls_cert (both or neither)"
    ]
    assert server_problems(tmp_path, tls_key=str(pem)) == [
        "sim.servers.oa.tls_cert: is required with tls_key (both or neither)"
    ]
    assert server_problems(
        tmp_path, http2="yes", tls_cert=str(pem), tls_key=str(tmp_path / "key.pem")
    ) == [
        "sim.servers.oa.http2: must be true or false",
        f"sim.servers.oa.tls_key: no such file: {tmp_path / 'key.pem'}",
    ]
