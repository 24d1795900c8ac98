"""How fast a race's losers are cut, from the upstream's own log, and what a k=2 race costs.

    python -m bench.loser_cut [--concurrency 200] [--requests 2000] [--rounds 3]
        [--think-ms 0] [--kind openai] [--upstream http1|http2] [--tls] [--json FILE]

One simulator process serves two OpenAI-kind servers (`a`, `b`), each with the same
model shape (TTFT 100 ms, 5 ms between tokens, 50 tokens), and one gateway process
serves two routes: `single` (one attempt, on `a`) and `race2` (race k=2 over `a` and
`b`). Rounds of closed-loop streaming requests at `--concurrency` alternate between the
two routes; the gateway's utime+stime is read around each round.

Every request carries its own prompt, which the simulator logs (`last_user_text`), so
the two upstream requests of one race are paired exactly. For each race the winner is
the attempt the client was served, the loser the one the gateway dropped. Per loser:
tokens it sent in all (the simulator counts a token once it is written to the socket,
so this includes what was in flight when the cut arrived), and tokens it wrote after the
winner's first token was written: counted from the simulator's own write time of every
token (`sim.log_token_times`). The estimate earlier stops used (the loser's tokens
before that moment from its own first-token time and the fixed gap between tokens) is
reported beside it (it would count tokens the simulator wrote late, in a burst, before
the winner's token as after it; the two agreed in every run so far). A loser that was
read to the end (outcome `completed`) is counted apart: with a 5 ms gap that means the
cut never came.

`--upstream http2` has both simulators speak HTTP/2 and both providers use it (a loser is
then reset with a RST_STREAM and its connection kept); `--tls` puts both behind TLS with a
throwaway certificate the gateway is told to trust (`SSL_CERT_FILE`), as a real
provider's: over HTTP/1.1 every cut loser then costs a new TLS handshake (made in the
background by default, `replace_cut_connections`: `--replace-cut off` leaves it to the
losing deployment's next attempt, `on` has it over plain http too). A third,
plain HTTP/1.1 simulator in the same process (`ctl`, no route uses it) answers the
benchmark's own calls (its log, its reset): the simulators share one log.

The gateway runs under `bench.cut_clock`, which logs when it dropped each loser on the
simulator's clock. Of the tokens written after the winner's first token, those written
before that drop are what a loser could still receive (the issue's measure); the rest the
simulator wrote into a socket the gateway had already reset, before its own loop saw the
reset.

Every answer takes the same time, so closed-loop clients stay in step: at c=200, 200
requests start together and their first tokens arrive together, and the gateway's loop
is busiest exactly when the cuts are due. `--think-ms N` has each client wait a uniform
0..N ms before each request, which spreads them out (as independent users would be).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
import yaml

from bench.cut_clock import read_cuts
from bench.procs import (
    REPO,
    Children,
    cpu_seconds,
    free_port,
    machine_busy_seconds,
    make_certificate,
)

SHAPE = {"ttft_ms": 100, "itl_ms": 5, "tokens": 50}
API_KEY = "bench-key"


def write_config(
    directory: Path,
    ports: dict[str, int],
    gw_port: int,
    kind: str = "openai",
    http2: bool = False,
    tls: tuple[Path, Path] | None = None,
    replace_cut: bool | None = None,
) -> Path:
    """`ports`: the raced servers `a` and `b`, and `ctl`; `tls`: (key, certificate);
    `replace_cut`: the providers' `replace_cut_connections` (None: unset, the default)."""
    raced = {name: port for name, port in ports.items() if name != "ctl"}
    scheme = "https" if tls else "http"
    served: dict[str, Any] = {"http2": True} if http2 else {}  # set only when on: an
    if tls:  # earlier gateway's config (an A/B run) knows no such key
        served |= {"tls_key": str(tls[0]), "tls_cert": str(tls[1])}
    config = {
        "listen": {"host": "127.0.0.1", "port": gw_port},
        "logging": {"format": "json", "level": "info"},
        "latency": {"prewarm": {"enabled": False}},
        "providers": {
            name: {
                "kind": kind,
                "base_url": f"{scheme}://127.0.0.1:{port}/v1",
                "api_key": API_KEY,
                "max_connections": 1024,
                **({"http2": True} if http2 else {}),
                **({} if replace_cut is None else {"replace_cut_connections": replace_cut}),
            }
            for name, port in raced.items()
        },
        "deployments": {f"m-{name}": {"provider": name, "model": f"m-{name}"} for name in raced},
        "routes": {
            "single": {"strategy": "fallback", "deployments": ["m-a"]},
            "race2": {"strategy": "race", "k": 2, "deployments": ["m-a", "m-b"]},
        },
        "sim": {
            "seed": 1,
            "log_token_times": True,
            "servers": {
                **{
                    name: {"kind": kind, "port": port, "models": {f"m-{name}": SHAPE}, **served}
                    for name, port in raced.items()
                },
                "ctl": {"kind": "openai", "port": ports["ctl"], "models": {"m-ctl": SHAPE}},
            },
        },
    }
    path = directory / "bench-loser-cut.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def _one(
    session: aiohttp.ClientSession, url: str, route: str, key: str, ttfts: list[float]
) -> bool:
    """One streamed request; its time to the first body bytes (the gateway sends its
    head with the first token) goes to `ttfts`."""
    body = orjson.dumps(
        {"model": route, "stream": True, "messages": [{"role": "user", "content": key}]}
    )
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    started = time.monotonic()
    async with session.post(url, data=body, headers=headers) as resp:
        first = await resp.content.readany()
        ttfts.append(time.monotonic() - started)
        data = first + await resp.read()
        return resp.status == 200 and data.endswith(b"data: [DONE]\n\n")


async def _round(
    url: str,
    route: str,
    concurrency: int,
    requests: int,
    tag: str,
    think_ms: float = 0.0,
    ttfts: list[float] | None = None,
) -> int:
    """Closed loop: `concurrency` workers until `requests` are done; the failures. With
    `think_ms`, each worker waits a uniform 0..think_ms before each request (seeded)."""
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    left = iter(range(requests))
    failures = 0
    pause = random.Random(tag).uniform
    seen: list[float] = [] if ttfts is None else ttfts

    async def worker() -> None:
        nonlocal failures
        for i in left:
            if think_ms > 0:
                await asyncio.sleep(pause(0, think_ms) / 1000)
            if not await _one(session, url, route, f"{tag}-{i}", seen):
                failures += 1

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await session.close()
    return failures


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def connections_opened(http: aiohttp.ClientSession, gw_url: str) -> float:
    """Upstream connections the gateway has opened so far (its /metrics counter)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with http.get(gw_url + "/metrics", headers=headers) as resp:
        text = await resp.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gateway_upstream_connections_total{") and 'event="opened"' in line
    )


def loser_stats(
    records: list[dict[str, Any]], tag: str, cuts: dict[str, float] | None = None
) -> dict[str, Any]:
    """The losers of the races tagged `tag`, from the simulator's log. With `cuts` (a
    request's text -> when the gateway dropped its loser, `bench.cut_clock`), the tokens
    written after the winner's first token are split at the cut: those before it could
    reach the gateway, those after went into a socket already reset (the simulator's own
    lag in seeing the reset), never received."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r["last_user_text"].startswith(tag + "-"):
            by_key.setdefault(r["last_user_text"], []).append(r)
    itl_s = SHAPE["itl_ms"] / 1000
    in_all: list[float] = []
    after: list[float] = []
    estimated: list[float] = []
    before_cut: list[float] = []
    lag_ms: list[float] = []  # the winner's first token written -> the loser cut
    read_to_end = 0
    races = 0
    unseen = 0  # cut before its request reached the simulator's handler: no record
    for pair in by_key.values():
        if len(pair) == 1:
            unseen += 1
            continue
        if len(pair) != 2:
            continue
        races += 1
        done = [r for r in pair if r["outcome"] == "completed"]
        if len(done) == 2:
            read_to_end += 1
            continue
        loser = next(r for r in pair if r["outcome"] != "completed")
        winner = next(r for r in pair if r is not loser)
        in_all.append(loser["tokens_sent"])
        before = 0
        won_at, lost_first = winner["first_token"], loser["first_token"]
        if won_at is not None and lost_first is not None and lost_first <= won_at:
            before = 1 + math.floor((won_at - lost_first) / itl_s)
        estimated.append(max(0, loser["tokens_sent"] - before))
        times = loser["token_times"] or []
        after.append(sum(1 for t in times if won_at is not None and t > won_at))
        cut = (cuts or {}).get(loser["last_user_text"])
        if cut is not None and won_at is not None:
            before_cut.append(sum(1 for t in times if won_at < t <= cut))
            lag_ms.append((cut - won_at) * 1000)
    return {
        "races": races,
        "losers_unseen": unseen,
        "losers_read_to_end": read_to_end,
        "loser_tokens_p50": _pct(in_all, 0.5),
        "loser_tokens_p99": _pct(in_all, 0.99),
        "loser_tokens_max": max(in_all) if in_all else None,
        "after_winner_first_token_p50": _pct(after, 0.5),
        "after_winner_first_token_p99": _pct(after, 0.99),
        "after_winner_first_token_max": max(after) if after else None,
        "estimated_after_p50": _pct(estimated, 0.5),
        "estimated_after_p99": _pct(estimated, 0.99),
        "estimated_after_max": max(estimated) if estimated else None,
        "before_cut_p50": _pct(before_cut, 0.5),
        "before_cut_p99": _pct(before_cut, 0.99),
        "before_cut_max": max(before_cut) if before_cut else None,
        "cut_clocked": len(before_cut),
        "cut_lag_ms_p50": _pct(lag_ms, 0.5),
        "cut_lag_ms_p99": _pct(lag_ms, 0.99),
    }


async def bench(
    args: argparse.Namespace, gw_url: str, sim_url: str, gw_pid: int, cut_log: Path | None = None
) -> dict[str, Any]:
    cpu: dict[str, float] = {"single": 0.0, "race2": 0.0}
    foreign: dict[str, float] = {"single": 0.0, "race2": 0.0}
    elapsed: dict[str, float] = {"single": 0.0, "race2": 0.0}
    done: dict[str, int] = {"single": 0, "race2": 0}
    opened: dict[str, float] = {"single": 0.0, "race2": 0.0}
    per_round: dict[str, list[float]] = {"single": [], "race2": []}  # CPU ms per request
    ttfts: dict[str, list[float]] = {"single": [], "race2": []}  # the client's, seconds
    failures = 0
    stats: list[dict[str, Any]] = []
    url = gw_url + "/v1/chat/completions"
    for route in ("single", "race2"):  # warm-up
        await _round(url, route, args.concurrency, args.concurrency, f"warm-{route}")
    async with aiohttp.ClientSession() as http:
        for r in range(args.rounds):
            order = ("single", "race2") if r % 2 == 0 else ("race2", "single")
            for route in order:
                await (await http.post(sim_url + "/_sim/reset")).read()
                tag = f"r{r}-{route}"
                conns0 = await connections_opened(http, gw_url)
                busy0, cpu0, t0 = machine_busy_seconds(), cpu_seconds(gw_pid), time.monotonic()
                own0 = time.process_time()
                failures += await _round(
                    url, route, args.concurrency, args.requests, tag, args.think_ms, ttfts[route]
                )
                used = cpu_seconds(gw_pid) - cpu0
                opened[route] += await connections_opened(http, gw_url) - conns0
                took = time.monotonic() - t0
                cpu[route] += used
                per_round[route].append(used * 1000 / args.requests)
                elapsed[route] += took
                done[route] += args.requests
                foreign[route] += max(
                    0.0, machine_busy_seconds() - busy0 - used - (time.process_time() - own0)
                )
                if route == "race2":
                    log = orjson.loads(await (await http.get(sim_url + "/_sim/log")).read())
                    records = log["records"] if isinstance(log, dict) else log
                    cuts = read_cuts(str(cut_log)) if cut_log is not None else None
                    stats.append(loser_stats(records, tag, cuts))
                print(
                    f"  round {r + 1} {route:<6} {args.requests / took:6.1f} req/s "
                    f"{used * 1000 / args.requests:5.2f} ms CPU/req",
                    file=sys.stderr,
                )
    merged: dict[str, Any] = {
        key: (max(s[key] for s in stats) if "max" in key else sum(s[key] for s in stats))
        for key in (
            "races",
            "losers_unseen",
            "losers_read_to_end",
            "loser_tokens_max",
            "after_winner_first_token_max",
            "estimated_after_max",
            "before_cut_max",
            "cut_clocked",
        )
        if all(s[key] is not None for s in stats)
    }
    for key in (
        "loser_tokens_p50",
        "loser_tokens_p99",
        "after_winner_first_token_p50",
        "after_winner_first_token_p99",
        "estimated_after_p50",
        "estimated_after_p99",
        "before_cut_p50",
        "before_cut_p99",
    ):
        merged[key] = max((s[key] for s in stats if s[key] is not None), default=None)
    # the measure the issue asks for, per round (the merged p99s are the worst round's)
    merged["before_cut_p99_per_round"] = [s["before_cut_p99"] for s in stats]
    merged["cut_lag_ms_per_round"] = [(s["cut_lag_ms_p50"], s["cut_lag_ms_p99"]) for s in stats]
    return {
        "concurrency": args.concurrency,
        "think_ms": args.think_ms,
        "kind": args.kind,
        "upstream": args.upstream,
        "tls": args.tls,
        "replace_cut": args.replace_cut or "auto",
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "failures": failures,
        "cpu_ms_per_request": {k: cpu[k] * 1000 / done[k] for k in cpu},
        "cpu_ms_per_round": per_round,
        # HTTP/1.1 cannot cancel a response and keep its connection: a cut loser's goes
        "upstream_connections_opened_per_request": {k: opened[k] / done[k] for k in cpu},
        "requests_per_s": {k: done[k] / elapsed[k] for k in cpu},
        "client_ttft_ms": {
            k: {q: (_pct(v, p) or 0.0) * 1000 for q, p in (("p50", 0.5), ("p99", 0.99))}
            for k, v in ttfts.items()
        },
        "other_processes_pct_of_a_core": {k: foreign[k] / elapsed[k] * 100 for k in cpu},
        "losers": merged,
        "losers_per_round": stats,
    }


def pair_line(per_round: dict[str, list[float]]) -> str:
    """k=2 minus single per round, each round's race2 against the single round run next to
    it (the machine's speed moves between rounds more than the two routes differ)."""
    diffs = sorted(r - s for s, r in zip(per_round["single"], per_round["race2"], strict=True))
    if not diffs:
        return "k=2 minus single per round: none"
    median = statistics.median(diffs)
    spread = ", ".join(f"{d:+.2f}" for d in diffs)
    return f"k=2 minus single per round: median {median:+.2f} ms ({spread})"


def table(out: dict[str, Any]) -> str:
    cpu, rps, other = (
        out["cpu_ms_per_request"],
        out["requests_per_s"],
        out["other_processes_pct_of_a_core"],
    )
    losers = out["losers"]
    conns = out["upstream_connections_opened_per_request"]
    lines = [
        f"c={out['concurrency']}, {out['rounds']} rounds x {out['requests_per_round']} requests "
        f"per route, think time 0-{out['think_ms']:g} ms, upstreams {out['upstream']}"
        f"{' over TLS' if out['tls'] else ''}, failures {out['failures']}",
        "",
        "| route | CPU ms/req (gw) | upstream connections opened per request | req/s "
        "| other processes, % of a core |",
        "|---|---|---|---|---|",
        f"| single | {cpu['single']:.2f} | {conns['single']:.2f} | {rps['single']:.1f} "
        f"| {other['single']:.0f} |",
        f"| race k=2 | {cpu['race2']:.2f} | {conns['race2']:.2f} | {rps['race2']:.1f} "
        f"| {other['race2']:.0f} |",
        f"| k=2 minus single | {cpu['race2'] - cpu['single']:+.2f} | | | |",
        "",
        "Client TTFT p50 / p99 ms: "
        + ", ".join(
            f"{route} {t['p50']:.1f} / {t['p99']:.1f}"
            for route, t in out.get("client_ttft_ms", {}).items()
        ),
        "",
        pair_line(out["cpu_ms_per_round"]),
        "",
        "| races | losers cut before the upstream logged them | losers read to the end "
        "| loser tokens p50 / p99 / max "
        "| after the winner's first token p50 / p99 / max "
        "| the same, estimated as before p50 / p99 / max |",
        "|---|---|---|---|---|---|",
        f"| {losers['races']} | {losers['losers_unseen']} | {losers['losers_read_to_end']} "
        f"| {losers['loser_tokens_p50']} / {losers['loser_tokens_p99']} / "
        f"{losers['loser_tokens_max']} | {losers['after_winner_first_token_p50']} / "
        f"{losers['after_winner_first_token_p99']} / {losers['after_winner_first_token_max']} "
        f"| {losers['estimated_after_p50']} / {losers['estimated_after_p99']} / "
        f"{losers['estimated_after_max']} |",
        "",
        "Of the tokens after the winner's first, those written before the gateway's cut (the "
        "rest went into a reset socket): p50 / p99 / max "
        f"{losers.get('before_cut_p50')} / {losers.get('before_cut_p99')} / "
        f"{losers.get('before_cut_max')}; p99 per round "
        f"{losers.get('before_cut_p99_per_round')} ({losers.get('cut_clocked')} cuts clocked)",
        "",
        "From the winner's first token written to the loser's cut, ms, p50 / p99 per round: "
        + ", ".join(
            f"{p50:.1f} / {p99:.1f}" if p50 is not None and p99 is not None else "none"
            for p50, p99 in losers.get("cut_lag_ms_per_round", [])
        ),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loser_cut", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="each client waits a uniform 0..N ms before each request (0: none, as before); "
        "with identical answers, clients without it start in waves of `--concurrency`",
    )
    parser.add_argument(
        "--kind",
        choices=("openai", "anthropic"),
        default="openai",
        help="the wire protocol both simulated servers speak (default openai)",
    )
    parser.add_argument(
        "--upstream",
        choices=("http1", "http2"),
        default="http1",
        help="the protocol between the gateway and both simulators (default http1)",
    )
    parser.add_argument(
        "--tls", action="store_true", help="both simulators behind TLS, as a real provider"
    )
    parser.add_argument(
        "--replace-cut",
        choices=("on", "off"),
        default=None,
        help="the providers' replace_cut_connections (default: unset, auto: on over TLS)",
    )
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    ports = {"a": free_port(), "b": free_port(), "ctl": free_port()}
    gw_port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-loser-") as tmp, Children() as children:
        directory = Path(tmp)
        tls = make_certificate(directory) if args.tls else None
        replace = {"on": True, "off": False, None: None}[args.replace_cut]
        http2 = args.upstream == "http2"
        config = write_config(directory, ports, gw_port, args.kind, http2, tls, replace)
        sim = children.gateway("sim", "sim", config, directory / "sim.log")
        cut_log = directory / "cuts.log"
        gw = children.start(
            "gateway",
            ["-m", "bench.cut_clock", str(cut_log), "serve", "--config", str(config)],
            directory / "gateway.log",
            REPO,
            {"SSL_CERT_FILE": str(tls[1])} if tls else None,
        )
        sim_url = f"http://127.0.0.1:{ports['ctl']}"
        sim.wait_http(sim_url + "/v1/models")
        gw.wait_http(f"http://127.0.0.1:{gw_port}/healthz")
        out = uvloop.run(bench(args, f"http://127.0.0.1:{gw_port}", sim_url, gw.pid, cut_log))
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
    print(table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
