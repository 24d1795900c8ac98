"""The floor: a bare aiohttp streaming proxy, to run beside the gateway in bench.overhead.

    python -m bench.bare_proxy --port 9300 --upstream http://127.0.0.1:PORT/v1 \
        [--max-connections 1024]

It does only what no gateway can skip on this stack: read the request, send it
upstream over a pooled connection, wait for the first content token (as the gateway
must, to choose a winner and a status code), then forward the upstream's bytes as they
come. No parsing, no normalisation, no accounting, no logging. Whatever the gateway
costs beyond this proxy is its own work; what this proxy costs is aiohttp, uvloop,
CPython and the machine. `--max-connections` caps the upstream pool (0: no cap);
bench.scale raises it to hold thousands of streams at once. Compare with:

    python -m bench.overhead --sim-port PORT --compare http://127.0.0.1:9300/v1 \\
        --compare-name bare-proxy --compare-pid <its pid>
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import uvloop
from aiohttp import web

FORWARDED = ("Authorization", "Content-Type")
MAX_CONNECTIONS = 1024
# no total deadline: bench.scale holds streams for minutes (aiohttp's default total is 300 s)
UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30)


class _HeldResponse(web.StreamResponse):
    _send_headers_immediately = False  # headers leave with the first token, one write


def _has_token(data: bytes) -> bool:
    return data.count(b'"content":"') > data.count(b'"content":""')


async def serve(port: int, upstream: str, max_connections: int = MAX_CONNECTIONS) -> None:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_connections), timeout=UPSTREAM_TIMEOUT
    )
    url = upstream.rstrip("/") + "/chat/completions"

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
        async with session.post(url, data=body, headers=headers) as upstream_response:
            if upstream_response.status != 200:
                return web.Response(
                    status=upstream_response.status, body=await upstream_response.read()
                )
            response: web.StreamResponse | None = None
            held: list[bytes] = []
            while data := await upstream_response.content.readany():
                if response is None:
                    held.append(data)
                    if not _has_token(data):
                        continue
                    response = _HeldResponse(headers={"Content-Type": "text/event-stream"})
                    await response.prepare(request)
                    data = b"".join(held)
                await response.write(data)
            if response is None:
                return web.Response(body=b"".join(held), content_type="text/event-stream")
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"bare proxy on http://127.0.0.1:{port}/v1 -> {upstream}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9300)
    parser.add_argument("--upstream", required=True, help="the simulator's /v1 base URL")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=MAX_CONNECTIONS,
        help=f"upstream connection pool size, 0 for no cap (default {MAX_CONNECTIONS})",
    )
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.upstream, args.max_connections))


if __name__ == "__main__":
    main()
