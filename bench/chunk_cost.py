"""Instructions per streamed request, repeatably: the gateway against the bare proxy, in lockstep.

    python -m bench.chunk_cost --callgrind [--requests 40] [--targets direct,bare,gateway]

Timing a proxy on a shared machine moves with the neighbours' load, and so does its
batching (a busy proxy reads several chunks at once and spends less per chunk). This
harness takes both out: one process (uvloop) holds an upstream, the proxy under test
(`gateway`: the real app from a generated config; `bare`: bench.bare_proxy; `direct`:
none) and the client, and the upstream writes its next chunk only when the client has
read the previous one, so every chunk crosses every hop alone (the c=1 shape), every run
alike. Under `valgrind --tool=callgrind` (instrumentation switched on by
`callgrind_control` after the warm-up, off after the measured requests) the instruction
count is then the same run after run.
The upstream and client are the same for every target, so target minus direct is what
the proxy costs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import orjson
import uvloop
from aiohttp import web

from bench.procs import callgrind_instrument, run_counted

ROOT = Path(__file__).resolve().parent.parent
TOKENS = int(os.environ.get("CHUNK_COST_TOKENS", "50"))  # tokens per answer
MODEL = "bench-lockstep"
TARGETS = ("direct", "bare", "gateway")


def _chunks(rid: str) -> list[bytes]:
    head = (
        b'data: {"id":"chatcmpl-' + rid.encode() + b'","object":"chat.completion.chunk",'
        b'"created":1700000000,"model":"' + MODEL.encode() + b'","system_fingerprint":null,'
        b'"choices":[{"index":0,"delta":'
    )
    tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
    out = [head + b'{"role":"assistant","content":""}' + tail]
    out += [head + b'{"content":"tok' + str(i).encode() + b' "}' + tail for i in range(TOKENS)]
    out.append(head + b'{},"logprobs":null,"finish_reason":"stop"}]}\n\n' + b"data: [DONE]\n\n")
    return out


class Lockstep:
    """The upstream waits, per stream, until the client has read what it wrote."""

    def __init__(self) -> None:
        self.turns: dict[str, asyncio.Event] = {}

    def turn(self, key: str) -> asyncio.Event:
        return self.turns.setdefault(key, asyncio.Event())


async def upstream_app(lock: Lockstep) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        key = body["messages"][-1]["content"]
        turn = lock.turn(key)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunks = _chunks(key)
        # the role chunk and the first token leave together (as many upstreams send them)
        for i, chunk in enumerate(chunks):
            turn.clear()
            await response.write(chunk)
            if i > 0 and i < len(chunks) - 1:
                await turn.wait()
        await response.write_eof()
        lock.turns.pop(key, None)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def _gateway(upstream_port: int) -> tuple[web.AppRunner, str]:
    from gateway.config import parse_config
    from gateway.logs import configure_logging
    from gateway.runtime import Gateway
    from gateway.server.app import start_server

    config = parse_config(
        {
            "logging": {"format": "json", "level": "info"},
            "latency": {"prewarm": {"enabled": False}},
            "routing": {"allow_direct_deployments": True},  # the client names the deployment
            "providers": {
                "up": {
                    "kind": "openai",
                    "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                    "api_key": "k",
                }
            },
            "deployments": {MODEL: {"provider": "up", "model": MODEL}},
        },
        env={},
    )
    configure_logging("json", "info")  # as `serve` does: one access-log line per request
    runner, url = await start_server(Gateway(config), "127.0.0.1", 0)
    return runner, url + "/v1"


async def _bare(upstream_port: int) -> tuple[asyncio.Task[None], str]:
    from bench.bare_proxy import serve

    with socket_port() as port:
        pass
    task = asyncio.create_task(serve(port, f"http://127.0.0.1:{upstream_port}/v1"))
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.01)
    return task, f"http://127.0.0.1:{port}/v1"


class socket_port:
    def __enter__(self) -> int:
        import socket

        self._s = socket.socket()
        self._s.bind(("127.0.0.1", 0))
        return int(self._s.getsockname()[1])

    def __exit__(self, *_: object) -> None:
        self._s.close()


async def one(session: aiohttp.ClientSession, url: str, lock: Lockstep, key: str) -> int:
    payload = orjson.dumps(
        {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": key}]}
    )
    tokens = 0
    headers = {"Content-Type": "application/json"}
    async with session.post(url + "/chat/completions", data=payload, headers=headers) as resp:
        assert resp.status == 200, resp.status
        while data := await resp.content.readany():
            tokens += data.count(b'"content":"tok')
            lock.turn(key).set()
    return tokens


async def run(target: str, requests: int, concurrency: int) -> float:
    lock = Lockstep()
    up_runner, up_port = await _serve(await upstream_app(lock))
    closers: list[object] = [up_runner]
    if target == "gateway":
        runner, url = await _gateway(up_port)
        closers.append(runner)
    elif target == "bare":
        task, url = await _bare(up_port)
        closers.append(task)
    else:
        url = f"http://127.0.0.1:{up_port}/v1"
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    try:
        for i in range(concurrency):  # warm-up: connections and caches
            assert await one(session, url, lock, f"warm-{i}") == TOKENS
        gc.freeze()  # as `serve` does after start-up, here for every target alike
        gc.set_threshold(50_000, 20, 100)
        callgrind_instrument(True)
        started = time.process_time()
        done = 0
        while done < requests:
            batch = min(concurrency, requests - done)
            got = await asyncio.gather(
                *(one(session, url, lock, f"s-{done + i}") for i in range(batch))
            )
            assert all(n == TOKENS for n in got), got
            done += batch
        cpu = time.process_time() - started
        callgrind_instrument(False)
        return cpu
    finally:
        await session.close()
        for closer in reversed(closers):
            if isinstance(closer, web.AppRunner):
                await closer.cleanup()
            elif isinstance(closer, asyncio.Task):
                closer.cancel()


def _callgrind(target: str, requests: int, concurrency: int) -> int:
    command = [sys.executable, "-m", "bench.chunk_cost", "--target", target]
    command += ["--requests", str(requests), "--concurrency", str(concurrency)]
    return run_counted(command, callgrind=True)[0]


def callgrind_table(requests: int, concurrency: int, targets: Sequence[str]) -> str:
    per: dict[str, float] = {}
    for target in targets:
        total = _callgrind(target, requests, concurrency)
        per[target] = total / requests
        print(f"  {target}: {total:,} instructions", file=sys.stderr)
    lines = [
        f"| target | instructions per request ({TOKENS} tokens, lockstep, c={concurrency}) "
        "| minus direct | x bare proxy |",
        "|---|---|---|---|",
    ]
    base = per.get("direct", 0.0)
    bare = per.get("bare", 0.0) - base
    for target, value in per.items():
        own = value - base
        ratio = f"{own / bare:.2f}" if target != "direct" and bare > 0 else "-"
        lines.append(f"| {target} | {value:,.0f} | {own:,.0f} | {ratio} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chunk_cost", description=__doc__)
    parser.add_argument("--target", choices=TARGETS, default="gateway")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--callgrind", action="store_true", help="every target, under callgrind")
    parser.add_argument("--targets", default=",".join(TARGETS))
    args = parser.parse_args(argv)
    if args.callgrind:
        targets = [t for t in args.targets.split(",") if t]
        print(callgrind_table(args.requests, args.concurrency, targets))
        return 0
    cpu = uvloop.run(run(args.target, args.requests, args.concurrency))
    print(f"{args.target}: {cpu * 1000 / args.requests:.3f} ms CPU per request (whole process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
