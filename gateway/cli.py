"""Command line: serve, demo, sim, check-config. `python -m gateway` is the same program."""

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

    demo = sub.add_parser("demo", help="gateway + simulated providers in one process, no keys")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)

    sim = sub.add_parser("sim", help="run the simulated providers of a config's `sim:` section")
    sim.add_argument("--config", required=True)

    check = sub.add_parser("check-config", help="validate a config file and summarize it")
    check.add_argument("file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        from gateway.config.check import check_config_main

        return check_config_main(args.file)

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
        configure_logging(config.logging.format, config.logging.level)
        from gateway.server.app import serve as serve_main

        _run(serve_main(config, args.host, args.port))
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
