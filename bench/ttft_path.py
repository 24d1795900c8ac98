"""Where the gateway's added TTFT at concurrency 1 goes, against the bare proxy's.

    python -m bench.ttft_path [--requests 100] [--rounds 4] [--json FILE]
    PATH_CLOCK_INNER=1 python -m bench.ttft_path ...   # each stretch broken into steps
    python -m bench.ttft_path --baseline DIR ...   # and the gateway of another checkout

Starts the simulator (bench.overhead's config: TTFT 100 ms, ITL 5 ms, 50 tokens), the
gateway and the bare proxy, each proxy under `bench.path_clock` and pinned to one CPU
(the client and simulator to the others). Sends streaming requests one at a time,
alternating the proxies round by round, and reads per request, from each proxy's own
stamps (`perf_counter_ns`, the same clock in every process here):

- request: from the request head's bytes reaching the proxy to its upstream write (the
  head and the body come in two reads from most clients; the proxy's work on the head
  delays its read of the body when the body is already there);
- first token: from the first token's bytes reaching the proxy (after the upstream's
  silence) to the proxy's write to the client;
- and, from the client's stamps on the same clock: its send to the head reaching the
  proxy, and the proxy's write to the client reading its first token.

The proxy's own time on the way to the first token is the sum of the first two; the
gateway's minus the bare proxy's is bench.overhead's c=1 "TTFT p50 over the bare proxy"
without the client's and the simulator's noise. Every stretch runs on caches gone cold
in the 100 ms the upstream is silent, which is what c=1 pays. With `--baseline DIR` (a
checkout of an earlier revision, e.g. a `git worktree`, with this tool in it) that
gateway runs as a third proxy, `baseline`, alternated with the other two, to measure a
change against what it changes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvloop

from bench.overhead import API_KEY, MODEL_TTFT, write_config
from bench.procs import Child, Children, free_port, pin, split_cpus

ROOT = Path(__file__).resolve().parent.parent
# The upstream is silent for 100 ms before its first token and 5 ms between tokens: bytes
# after a silence this long start a token's arrival (it may come in more than one read).
QUIET_NS = 2_000_000
PROXIES = ("gateway", "bare")


async def _requests(url: str, n: int, sent: list[tuple[int, int]]) -> None:
    """`n` streamed requests one after the other; each one's (send, first token) ns."""
    body = {"model": MODEL_TTFT, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            t_send, t_first = time.perf_counter_ns(), 0
            async with session.post(url + "/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200, r.status
                async for line in r.content:
                    if not t_first and b'"content":"' in line and b'"content":""' not in line:
                        t_first = time.perf_counter_ns()
            sent.append((t_send, t_first))


@dataclass
class Paths:
    """Each request's stretches (µs), and the steps between stamps inside them."""

    request: list[float] = field(default_factory=list)
    first_token: list[float] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=dict)
    ends: list[tuple[int, int]] = field(default_factory=list)  # (head in, first token out)

    def add_steps(self, path: list[tuple[str, int]], prefix: str) -> None:
        for (a, ta), (b, tb) in itertools.pairwise(path):
            self.steps.setdefault(f"{prefix} {a}->{b}", []).append((tb - ta) / 1e3)


def read_paths(stamps: list[tuple[str, int]]) -> Paths:
    """Walk one proxy's stamps (requests one at a time): in (head, body) ... up ... tok
    (silence) tok ... out."""
    paths = Paths()
    path: list[tuple[str, int]] = []
    phase, last = "idle", 0
    for kind, ns in stamps:
        gap, last = ns - last, ns
        if phase in ("idle", "streaming") and kind == "in":
            phase, path = "request", [(kind, ns)]
        elif phase == "request" and kind == "tok" and any(k == "up" for k, _ in path):
            cut = max(i for i, (k, _) in enumerate(path) if k == "up")
            paths.request.append((path[cut][1] - path[0][1]) / 1e3)
            paths.add_steps(path[: cut + 1], "request")
            head_in = path[0][1]
            phase, path = "waiting", [(kind, ns)]
        elif phase == "request":
            path.append((kind, ns))
        elif phase == "waiting" and kind == "tok" and gap > QUIET_NS:
            path = [(kind, ns)]  # the first token's bytes, after the upstream's silence
        elif phase == "waiting":
            path.append((kind, ns))
            if kind == "out":
                paths.first_token.append((ns - path[0][1]) / 1e3)
                paths.add_steps(path, "token")
                paths.ends.append((head_in, ns))
                phase = "streaming"
    return paths


def _read_stamps(path: Path, skip: int) -> list[tuple[str, int]]:
    lines = path.read_text().splitlines()[skip:]
    return [(kind, int(ns)) for kind, ns in (line.split() for line in lines) if kind != "end"]


def _dump(child: Child, out: Path) -> int:
    """Have the proxy write its stamps so far; how many there are."""
    out.unlink(missing_ok=True)
    os.kill(child.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if out.exists() and out.read_text().endswith("end 0\n"):
            return len(out.read_text().splitlines()) - 1
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} wrote no stamps")


def _p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="per round and proxy")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json")
    parser.add_argument("--baseline", type=Path, help="a checkout whose gateway runs too")
    args = parser.parse_args()
    sim_port, gw_port, bare_port = free_port(), free_port(), free_port()
    names = (*PROXIES, "baseline") if args.baseline else PROXIES
    sent: dict[str, list[tuple[int, int]]] = {name: [] for name in names}
    paths: dict[str, Paths] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ttft-path-") as tmp, Children() as children:
        d = Path(tmp)
        config = write_config(d, sim_port, gw_port)
        sim = children.gateway("sim", "sim", config, d / "sim.log")
        outs = {name: d / f"{name}.stamps" for name in names}
        clocked = ["-m", "bench.path_clock"]
        upstream = f"http://127.0.0.1:{sim_port}/v1"
        proxies = {
            "gateway": children.start(
                "gateway",
                [*clocked, str(outs["gateway"]), "gateway", "serve", "--config", str(config)],
                d / "gateway.log",
                ROOT,
            ),
            "bare": children.start(
                "bare",
                [
                    *clocked,
                    str(outs["bare"]),
                    "bare",
                    "--port",
                    str(bare_port),
                    "--upstream",
                    upstream,
                ],
                d / "bare.log",
                ROOT,
            ),
        }
        urls = {
            "gateway": f"http://127.0.0.1:{gw_port}/v1",
            "bare": f"http://127.0.0.1:{bare_port}/v1",
        }
        if args.baseline:
            base_port = free_port()
            serve = ["serve", "--config", str(config), "--port", str(base_port)]
            command = [*clocked, str(outs["baseline"]), "gateway", *serve]
            proxies["baseline"] = children.start(
                "baseline", command, d / "baseline.log", args.baseline.resolve()
            )
            urls["baseline"] = f"http://127.0.0.1:{base_port}/v1"
        sim.wait_http(f"http://127.0.0.1:{sim_port}/v1/models")
        for name in names:
            if name != "bare":
                proxies[name].wait_http(urls[name].removesuffix("/v1") + "/healthz")
        proxies["bare"].wait_port(bare_port)
        proxy_cpus, load_cpus = split_cpus()
        for child in proxies.values():
            pin(child.pid, proxy_cpus)
        pin(sim.pid, load_cpus)
        pin(os.getpid(), load_cpus)
        for url in urls.values():  # warm-up: connections, imports, caches of first use
            uvloop.run(_requests(url, 20, []))
        warm = {name: _dump(child, outs[name]) for name, child in proxies.items()}
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else reversed(names):
                uvloop.run(_requests(urls[name], args.requests, sent[name]))
        for name, child in proxies.items():
            _dump(child, outs[name])
            paths[name] = read_paths(_read_stamps(outs[name], warm[name]))
    result: dict[str, dict[str, float]] = {}
    for name in names:
        p = paths[name]
        for (send, first), (head_in, out) in zip(sent[name], p.ends, strict=False):
            p.steps.setdefault("client send->head in", []).append((head_in - send) / 1e3)
            p.steps.setdefault("out->client reads token", []).append((first - out) / 1e3)
        result[name] = {
            "requests": len(p.first_token),
            "request_us_p50": _p50(p.request),
            "first_token_us_p50": _p50(p.first_token),
            "client_ttft_ms_p50": _p50([(f - s) / 1e6 for s, f in sent[name]]),
        }
        print(f"-- {name}: steps, median us (count)")
        for label, values in p.steps.items():
            if len(values) >= len(p.first_token) // 2:
                print(f"   {label:32} {_p50(values):8.1f}  ({len(values)})")
    for name, r in result.items():
        print(
            f"{name:8} n={r['requests']:4}  request p50 {r['request_us_p50']:7.1f} us  "
            f"first token p50 {r['first_token_us_p50']:7.1f} us  "
            f"client TTFT p50 {r['client_ttft_ms_p50']:.3f} ms"
        )
    for name in (n for n in names if n != "bare"):  # the gateway, and the baseline's
        gw, bare = result[name], result["bare"]
        own = gw["request_us_p50"] + gw["first_token_us_p50"]
        own -= bare["request_us_p50"] + bare["first_token_us_p50"]
        client = (gw["client_ttft_ms_p50"] - bare["client_ttft_ms_p50"]) * 1e3
        print(f"{name} over bare: {own:+.1f} us in the proxies; client TTFT p50 {client:+.0f} us")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
