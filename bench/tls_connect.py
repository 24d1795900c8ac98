"""What a new upstream connection costs the gateway: plain TCP against TLS.

    python -m bench.tls_connect [--requests 300]

A race's loser is cut with a reset (HTTP/1.1 cannot cancel a response and keep its
connection), so each race opens one new upstream connection to replace it. Against the
simulator that is a TCP connect; against a real provider it is a TLS handshake too. This
measures both through the gateway's own pool (`Http1Pool`, uvloop): `--requests`
requests one at a time, each on a new connection that is cut after its answer as a
loser's is, against a local server in a child process (its CPU is not counted), and
reports this process's CPU per request. A third row gives the TLS session of the last
connection to the next one (a context whose `wrap_bio` passes it on; the pool does not do
this): TLS 1.3 resumption still runs an ECDHE exchange, so it is shown, not assumed.
The certificate is a throwaway RSA-2048 one made with the `openssl` command.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvloop

from bench.procs import make_certificate
from gateway.streaming.http1.pool import Http1Pool

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


def serve(port: int, cert: str | None, key: str | None) -> None:
    """The child: answer every request with ANSWER, on TLS when given a certificate."""

    async def main() -> None:
        tls = None
        if cert and key:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(cert, key)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while await reader.readuntil(b"\r\n\r\n"):
                    writer.write(ANSWER)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=tls, backlog=1024)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


class _Counts:
    opened = 0
    reused = 0


class ResumingContext(ssl.SSLContext):
    """Hands the last connection's TLS session to the next handshake (`wrap_bio`)."""

    session: ssl.SSLSession | None = None

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        if kwargs.get("session") is None and self.session is not None:
            kwargs["session"] = self.session
        return super().wrap_bio(*args, **kwargs)


def _client_context(cls: type[ssl.SSLContext], cert: Path) -> ssl.SSLContext:
    context = cls(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(cert))
    return context


async def measure(url: str, requests: int, tls: ssl.SSLContext | None) -> tuple[float, int, int]:
    """(CPU ms per request, connections opened, TLS sessions reused) for `requests` on
    new connections, each cut after its answer."""
    counts = _Counts()
    pool = Http1Pool(counts, tls=tls)
    reused = 0
    try:

        async def one() -> None:
            nonlocal reused
            response = await pool.request("GET", url, {}, None)
            assert await response.content.read() == b"ok"
            transport = response._connection.transport  # the pool offers no public view
            ssl_object = transport.get_extra_info("ssl_object") if transport else None
            if ssl_object is not None:
                reused += ssl_object.session_reused
                if isinstance(tls, ResumingContext):
                    tls.session = ssl_object.session
            response.close()  # the loser's reset: the next request connects again

        for _ in range(30):  # warm-up: imports, caches, the server's accept path
            await one()
        opened0, reused = counts.opened, 0
        started = time.process_time()
        for _ in range(requests):
            await one()
        cpu = time.process_time() - started
        return cpu * 1000 / requests, counts.opened - opened0, reused
    finally:
        await pool.close()


def _start(port: int, cert: Path | None, key: Path | None) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "bench.tls_connect", "--serve", str(port)]
    if cert is not None and key is not None:
        args += ["--cert", str(cert), "--key", str(key)]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tls_connect", description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.cert, args.key)
        return 0
    from bench.procs import free_port

    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        key, cert = make_certificate(Path(tmp))
        plain_port, tls_port = free_port(), free_port()
        children = [_start(plain_port, None, None), _start(tls_port, cert, key)]
        try:
            rows = [
                ("TCP", f"http://127.0.0.1:{plain_port}/", None),
                ("TLS", f"https://localhost:{tls_port}/", _client_context(ssl.SSLContext, cert)),
                (
                    "TLS, session resumed",
                    f"https://localhost:{tls_port}/",
                    _client_context(ResumingContext, cert),
                ),
            ]
            print("| connection | CPU ms per request on a new connection | opened | resumed |")
            print("|---|---|---|---|")
            for name, url, tls in rows:
                cpu, opened, resumed = uvloop.run(measure(url, args.requests, tls))
                print(f"| {name} | {cpu:.3f} | {opened} | {resumed} |")
        finally:
            for child in children:
                child.kill()
                child.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
