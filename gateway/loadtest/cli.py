"""`race-gateway bench` / `python -m gateway.loadtest`: load-test any OpenAI-compatible URL.

Exit status: 0 when every request succeeded, 1 when some failed (or none
ran), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from gateway.loadtest.client import DEFAULT_PROMPT, LoadResult, LoadSpec, run_spec
from gateway.loadtest.report import format_text, write_json, write_plots


def header_arg(value: str) -> tuple[str, str]:
    name, sep, content = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {value!r}")
    return name.strip(), content.strip()


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="race-gateway bench",
        description="Streaming load test of an OpenAI-compatible chat completions endpoint.",
    )
    add = parser.add_argument
    add("--base-url", required=True, help="e.g. http://127.0.0.1:8080/v1")
    add("--model", required=True, help="model (or route) name to send")
    add("--api-key", help="bearer token; env:NAME reads it from the environment")
    add(
        "--concurrency",
        type=_positive_int,
        help="closed loop: workers (default 10); "
        "with --rate: the most requests in flight (default unbounded)",
    )
    add("--rate", type=_positive_float, help="open loop: requests per second")
    add("--poisson", action="store_true", help="with --rate: Poisson arrivals, not even spacing")
    add("--requests", type=_positive_int, help="stop after this many requests")
    add("--duration", type=_positive_float, help="stop starting requests after this many seconds")
    add("--max-tokens", type=_positive_int, help="max_tokens of each request")
    add("--prompt", default=DEFAULT_PROMPT, help="user message of each request")
    add("--timeout", type=_positive_float, default=60.0, help="per request, seconds (default 60)")
    add(
        "--grace",
        type=float,
        default=10.0,
        help="after --duration, seconds in-flight requests may still run (default 10)",
    )
    add(
        "--header",
        type=header_arg,
        action="append",
        default=[],
        metavar="K:V",
        help="extra request header (repeatable)",
    )
    add("--request-id-prefix", help="send x-request-id: <prefix><n> with request n")
    add("--json", metavar="FILE", help="write spec, summary and every sample as JSON (- = stdout)")
    add("--plot", metavar="DIR", help="write ttft_cdf.png and latency_over_time.png into DIR")
    add("--no-progress", action="store_true", help="no progress line, even on a terminal")
    return parser


def _api_key(value: str | None) -> str | None:
    if value is None or not value.startswith("env:"):
        return value
    resolved = os.environ.get(value[4:])
    if not resolved:
        raise ValueError(f"--api-key {value}: environment variable {value[4:]} is not set")
    return resolved


def _run(coro: Coroutine[Any, Any, LoadResult]) -> LoadResult:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(coro)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    requests = args.requests
    if requests is None and args.duration is None:
        requests = 100
    try:
        api_key = _api_key(args.api_key)
        spec = LoadSpec(
            base_url=args.base_url,
            model=args.model,
            concurrency=args.concurrency,
            rate=args.rate,
            requests=requests,
            duration_s=args.duration,
            max_tokens=args.max_tokens,
            prompt=args.prompt,
            timeout_s=args.timeout,
            grace_s=args.grace,
            poisson=args.poisson,
            request_id_prefix=args.request_id_prefix,
            headers=tuple(args.header),
        )
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    progress = False if args.no_progress else None
    result = _run(run_spec(spec, api_key=api_key, progress=progress))
    to_stdout = args.json == "-"
    print(format_text(result), file=sys.stderr if to_stdout else sys.stdout)
    if args.json:
        write_json(args.json, result)
    if args.plot:
        for path in write_plots(result, args.plot):
            print(f"wrote {path}", file=sys.stderr)
    summary = result.summary
    return 0 if summary.requests and summary.error_count == 0 else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
