"""What one streamed upstream request costs the client side: aiohttp's `ClientSession`
(the gateway's upstream client until stop 19) against `gateway.streaming.http1` (since).

    python -m bench.upstream_client [--requests 300] [--no-callgrind]

The simulator (one OpenAI-shaped server, 5 tokens at once) runs in its own process; each
client runs in a fresh process of its own, sends `--requests` streamed chat requests one
at a time and reads each body to its end, as `streaming/upstream.py` does, in two ways:
- `pooled`: every request on the kept-alive connection (a single attempt, a winner);
- `cut`: every request on a new connection, dropped (reset) once the head and the first
  body piece are in (a race's loser).
Under `valgrind --tool=callgrind` (the default) only the measured requests are counted,
in instructions, which repeat run to run; kernel work (connect, send, the reset) is not
counted. `--no-callgrind` prints CPU seconds instead.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

import aiohttp
import uvloop
import yaml

from bench.procs import Children, callgrind_instrument, free_port, run_counted

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ("aiohttp", "http1")
MODES = ("pooled", "cut")
WARM = 50
BODY = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}'
HEADERS = {"Authorization": "Bearer k", "Content-Type": "application/json"}


def sim_config(port: int) -> dict[str, object]:
    model = {"ttft_ms": 0, "itl_ms": 0, "tokens": 5}
    server = {"kind": "openai", "port": port, "models": {"m": model}}
    return {"sim": {"seed": 1, "servers": {"s": server}}}


OneRequest = Callable[[bool], Awaitable[None]]


class Answer(Protocol):
    content: aiohttp.StreamReader

    def release(self) -> None: ...

    def close(self) -> None: ...


async def read(response: Answer, cut: bool) -> None:
    """The whole body, then the connection back to the pool; or, for a loser, the first
    piece, then a reset."""
    if cut:
        await response.content.readany()
        response.close()
        return
    while await response.content.readany():
        pass
    response.release()


async def aiohttp_client(url: str) -> tuple[OneRequest, Callable[[], Awaitable[None]]]:
    """A session set up as the gateway's `UpstreamPool` had it (stop 18)."""
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=100, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_connect=5)
    session = aiohttp.ClientSession(
        connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",)
    )

    async def one(cut: bool) -> None:
        await read(await session.request("POST", url, headers=HEADERS, data=BODY), cut)

    return one, session.close


async def http1_client(url: str) -> tuple[OneRequest, Callable[[], Awaitable[None]]]:
    from gateway.streaming.http1.pool import Http1Pool
    from gateway.streaming.upstream import PoolStats

    pool = Http1Pool(PoolStats(), limit=100, connect_timeout_s=5, keepalive_s=30)

    async def one(cut: bool) -> None:
        await read(await pool.request("POST", url, HEADERS, BODY), cut)

    return one, pool.close


async def run(client: str, mode: str, requests: int, port: int) -> float:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    make = aiohttp_client if client == "aiohttp" else http1_client
    one, close = await make(url)
    cut = mode == "cut"
    try:
        for _ in range(WARM):
            await one(cut)
        gc.collect()
        gc.freeze()
        callgrind_instrument(True)
        started = time.process_time()
        for _ in range(requests):
            await one(cut)
        cpu = time.process_time() - started
        callgrind_instrument(False)
        return cpu
    finally:
        await close()


def _measure(
    client: str, mode: str, requests: int, port: int, callgrind: bool
) -> tuple[int, float]:
    command = [sys.executable, "-m", "bench.upstream_client", "--child", f"{client},{mode}"]
    command += ["--requests", str(requests), "--port", str(port)]
    instructions, out = run_counted(command, callgrind)
    return instructions, float(out.split("result ")[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream_client", description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--no-callgrind", action="store_true", help="CPU seconds only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        client, mode = args.child.split(",")
        print(f"result {uvloop.run(run(client, mode, args.requests, args.port))}")
        return 0
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-upstream-client-") as tmp, Children() as kids:
        config = Path(tmp) / "sim.yaml"
        config.write_text(yaml.safe_dump(sim_config(port)))
        kids.gateway("sim", "sim", config, Path(tmp) / "sim.log").wait_port(port)
        rows = {
            (client, mode): _measure(client, mode, args.requests, port, not args.no_callgrind)
            for mode in MODES
            for client in CLIENTS
        }
    n = args.requests
    print("| client | request | instructions per request | CPU us per request |")
    print("|---|---|---|---|")
    for (client, mode), (instructions, cpu) in rows.items():
        counted = f"{instructions / n:,.0f}" if instructions else "-"
        print(f"| {client} | {mode} | {counted} | {cpu * 1e6 / n:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
