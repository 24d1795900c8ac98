"""The same streamed load through each front door of one gateway: does the door cost CPU?

    python -m bench.doors [--quick] [--doors chat,responses,messages] [--json FILE]

Starts a simulator and a gateway (the processes and config of `bench.overhead`), then
sends identical rounds of streaming requests (TTFT 100 ms, ITL 5 ms, 50 tokens) through
`/v1/chat/completions`, `/v1/responses` and `/v1/messages` at concurrency 50, alternating
the order round by round, and charges the gateway's utime+stime to each door's rounds.
The upstream is the same OpenAI-kind simulator for every door: only the front door
differs (parse, encode, error shape).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvloop

from bench.overhead import API_KEY, MODEL_TTFT, PROMPT, write_config
from bench.procs import Children, cpu_seconds, free_port, machine_busy_seconds
from gateway.loadtest import make_session, run_load, summarize
from gateway.loadtest.report import to_json_bytes
from gateway.loadtest.timing import Door

DOORS: tuple[Door, ...] = ("chat", "responses", "messages")


async def measure(
    url: str, gw_pid: int, doors: Sequence[Door], concurrency: int, requests: int, rounds: int
) -> list[dict[str, Any]]:
    tallies: dict[str, dict[str, Any]] = {
        d: {"cpu_s": 0.0, "samples": [], "elapsed_s": 0.0, "foreign_s": 0.0} for d in doors
    }
    session = make_session(concurrency)
    try:
        for door in doors:  # warm-up, not measured
            await run_load(
                url,
                MODEL_TTFT,
                api_key=API_KEY,
                concurrency=concurrency,
                requests=concurrency,
                prompt=PROMPT,
                session=session,
                progress=False,
                door=door,
            )
        for r in range(rounds):
            for door in doors if r % 2 == 0 else tuple(reversed(doors)):
                cpu0, busy0, client0 = (
                    cpu_seconds(gw_pid),
                    machine_busy_seconds(),
                    time.process_time(),
                )
                result = await run_load(
                    url,
                    MODEL_TTFT,
                    api_key=API_KEY,
                    concurrency=concurrency,
                    requests=requests,
                    prompt=PROMPT,
                    session=session,
                    progress=False,
                    door=door,
                )
                cpu = cpu_seconds(gw_pid) - cpu0
                busy = machine_busy_seconds() - busy0 - cpu - (time.process_time() - client0)
                tally = tallies[door]
                tally["cpu_s"] += cpu
                tally["samples"].extend(result.samples)
                tally["elapsed_s"] += result.summary.elapsed_s
                tally["foreign_s"] += max(busy, 0.0)
                s = result.summary
                print(
                    f"  round {r + 1} {door:<10} {cpu * 1000 / requests:6.2f} ms CPU/req  "
                    f"TTFT p50 {s.ttft_ms.p50 or 0:6.1f} ms  errors {s.errors or 0}",
                    file=sys.stderr,
                )
    finally:
        await session.close()
    rows = []
    for door, tally in tallies.items():
        n = len(tally["samples"])
        s = summarize(tally["samples"], tally["elapsed_s"])
        rows.append(
            {
                "door": door,
                "requests": n,
                "cpu_ms_per_request": tally["cpu_s"] * 1000 / n if n else None,
                "ttft_p50_ms": s.ttft_ms.p50,
                "ttft_p99_ms": s.ttft_ms.p99,
                "errors": s.errors,
                "other_processes_share": tally["foreign_s"] / tally["elapsed_s"] * 100,
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    chat = next((r["cpu_ms_per_request"] for r in rows if r["door"] == "chat"), None)
    lines = [
        "| door | requests | CPU ms/req (gw) | vs chat | TTFT p50 ms | TTFT p99 ms | errors "
        "| other processes, % of a core |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = r["cpu_ms_per_request"]
        ratio = f"{(cpu / chat - 1) * 100:+.1f} %" if chat and cpu else "-"
        errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
        lines.append(
            f"| {r['door']} | {r['requests']} | {cpu:.2f} | {ratio} | {r['ttft_p50_ms']:.1f} "
            f"| {r['ttft_p99_ms']:.1f} | {errors} | {r['other_processes_share']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.doors", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N: a smoke run")
    parser.add_argument("--doors", default=",".join(DOORS), help="comma-separated doors")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = parser.parse_args(argv)
    doors: tuple[Door, ...] = tuple(d.strip() for d in args.doors.split(","))  # type: ignore[misc]
    requests, rounds = (100, 2) if args.quick else (1000, 3)
    sim_port, gw_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="bench-doors-") as tmp, Children() as children:
        directory = Path(tmp)
        config = write_config(directory, sim_port, gw_port)
        sim = children.gateway("sim", "sim", config, directory / "sim.log")
        gw = children.gateway("gateway", "serve", config, directory / "gateway.log")
        sim.wait_http(f"http://127.0.0.1:{sim_port}/v1/models")
        gw.wait_http(f"http://127.0.0.1:{gw_port}/healthz")
        url = f"http://127.0.0.1:{gw_port}/v1"
        rows = uvloop.run(measure(url, gw.pid, doors, 50, requests, rounds))
    print(table(rows))
    if args.json:
        Path(args.json).write_bytes(to_json_bytes({"rows": rows}) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
