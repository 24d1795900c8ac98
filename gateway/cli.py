"""Command line: serve, demo, sim, check-config, bench, regress, models.
`python -m gateway` is the same program."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from typing import Any


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop

        uvloop.run(main)
    except ImportError:  # pragma: no cover - platforms without uvloop
        asyncio.run(main)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="race-gateway",
        description="OpenAI-compatible LLM gateway that races providers on the first token.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", required=True, help="YAML config file")
    serve.add_argument("--host", help="override listen.host")
    serve.add_argument("--port", type=int, help="override listen.port")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the port with SO_REUSEPORT, under a supervisor that "
        "restarts them (default 1: serve in this process). Workers share state only through "
        "`state.backend: redis`; with `memory` each keeps its own profiles, health and limits",
    )
    serve.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds that requests in flight get to finish after SIGTERM/SIGINT (default 30)",
    )
    serve.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=1.0,
        metavar="SECONDS",
        help="reload the config when its file changes (polled every SECONDS, default 1); "
        "SIGHUP and POST /admin/reload reload it in any case",
    )
    serve.add_argument("--worker-of", help=argparse.SUPPRESS)  # "i/N": set by the supervisor

    demo = sub.add_parser("demo", help="gateway + simulated providers in one process, no keys")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)

    sim = sub.add_parser("sim", help="run the simulated providers of a config's `sim:` section")
    sim.add_argument("--config", required=True)

    check = sub.add_parser("check-config", help="validate a config file and summarize it")
    check.add_argument("file")

    # These two parse their own options (everything after the command name).
    sub.add_parser("bench", help="load-test any OpenAI-compatible endpoint", add_help=False)
    sub.add_parser("regress", help="run a canonical-prompt regression suite", add_help=False)
    sub.add_parser(
        "models", help="list configured models (or --all: the catalogue)", add_help=False
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from gateway.loadtest import main as bench_main

        return bench_main(argv[1:])
    if argv and argv[0] == "models":
        from gateway.list_models import main as models_main

        return models_main(argv[1:])
    if argv and argv[0] == "regress":
        from gateway.regress import main as regress_main

        return regress_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        from gateway.check_config import check_config_main

        return check_config_main(args.file)

    from gateway.compat_aiohttp import malformed_http_status
    from gateway.config import ConfigError, load_config
    from gateway.logs import configure_logging

    if args.command == "serve":
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(f"config {args.config} is invalid:\n{exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"cannot read config {args.config}: {exc.strerror}", file=sys.stderr)
            return 1
        if args.workers < 1 or not args.grace >= 0 or not (args.watch or 1) > 0:
            print("--workers must be >= 1, --grace >= 0 and --watch > 0", file=sys.stderr)
            return 2
        configure_logging(
            config.logging.format,
            config.logging.level,
            background=True,
            refusal=malformed_http_status,
        )
        host = args.host or config.listen.host
        port = args.port if args.port is not None else config.listen.port
        if args.workers > 1 and args.worker_of is None:
            from gateway.server.workers import supervise

            return supervise(
                args.config, config, host, port, args.workers, args.grace, watch_s=args.watch
            )
        from gateway.regress.auto import attach as attach_auto_regress
        from gateway.server.app import ListenError
        from gateway.server.app import serve as serve_main

        try:
            _run(
                serve_main(
                    config,
                    host,
                    port,
                    grace_s=args.grace,
                    worker=args.worker_of,
                    config_path=args.config,
                    watch_s=args.watch,
                    setup=attach_auto_regress,
                )
            )
        except ListenError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        return 0
    if args.command == "demo":
        configure_logging("auto", "info")
        from gateway.demo import run_demo

        _run(run_demo(args.host, args.port))
        return 0
    if args.command == "sim":
        configure_logging("auto", "info")
        from gateway.sim.server import run_sim

        _run(run_sim(args.config))
        return 0
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
