"""`race-gateway models`: what each configured deployment is (context window, prices,
capabilities, lifecycle, and where each fact came from), or with `--all` the catalogue."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from gateway.catalogue.entry import CAPABILITIES, Capabilities, ModelEntry
from gateway.catalogue.lifecycle import Lifecycle, lifecycle_of, today_utc
from gateway.catalogue.store import Catalogue, load, shipped
from gateway.config import ConfigError, load_config
from gateway.config.model import Config

CAPABILITY_WORDS = {
    "structured_output": "json",
    "audio_input": "audio-in",
    "audio_output": "audio-out",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="race-gateway models",
        description="List the configured deployments with their effective context window, "
        "prices, capabilities and deprecation status, or (--all) the model catalogue.",
    )
    parser.add_argument("--config", metavar="FILE", help="gateway config YAML")
    parser.add_argument(
        "--all", action="store_true", help="list the catalogue (with the config's own files)"
    )
    parser.add_argument("--provider", help="with --all: only this provider family")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    return parser


def _capabilities(caps: Capabilities) -> str:
    words = []
    for name in CAPABILITIES:
        value = getattr(caps, name)
        word = CAPABILITY_WORDS.get(name, name)
        if value is None:
            words.append(word + "?")
        elif value:
            words.append(word)
    return ",".join(words) or "-"


def _num(value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _life_json(life: Lifecycle) -> dict[str, Any]:
    return {
        "state": life.state,
        "shutdown_date": life.shutdown_date.isoformat() if life.shutdown_date else None,
        "days_left": life.days_left,
        "successor": life.successor,
    }


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def configured(config: Config, today: dt.date, as_json: bool) -> str:
    """The deployments of a loaded config, one row (or JSON object) each."""
    items = []
    rows = []
    for name, dep in config.deployments.items():
        life = lifecycle_of(dep.deprecated, dep.shutdown_date, today, dep.successor)
        kind = config.providers[dep.provider].kind
        overridden = sorted(k for k, v in dep.facts_from.items() if v == "config")
        items.append(
            {
                "deployment": name,
                "provider": dep.provider,
                "kind": kind,
                "model": dep.model,
                "catalogue": dep.catalogue_id,
                "context_window": dep.context_window,
                "max_output_tokens": dep.max_output_tokens,
                "price": {k: v for k, v in vars_of(dep.price).items() if v is not None},
                "capabilities": dep.capabilities.as_dict(),
                "lifecycle": _life_json(life),
                "overridden": overridden,
                "sources": dep.facts_from,
            }
        )
        origin = dep.catalogue_id or "(not in catalogue)"
        if overridden:
            origin += " +config"
        rows.append(
            [
                name,
                f"{dep.provider}/{dep.model}",
                origin,
                _num(dep.context_window),
                _num(dep.max_output_tokens),
                f"{dep.price.input:g}/{dep.price.output:g}",
                _num(dep.price.cached_input),
                _capabilities(dep.capabilities),
                life.label,
            ]
        )
    if as_json:
        return orjson.dumps({"today": today.isoformat(), "deployments": items}).decode()
    headers = ["DEPLOYMENT", "MODEL", "FROM", "CONTEXT", "MAX OUT", "$IN/$OUT", "$CACHED",
               "CAPABILITIES", "STATUS"]  # fmt: skip
    return (
        _table(headers, rows)
        + "\nprices: USD per million tokens; '?' = unknown (never used to skip a candidate)"
    )


def vars_of(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def catalogue_listing(
    catalogue: Catalogue, today: dt.date, as_json: bool, provider: str | None
) -> str:
    entries = [e for e in catalogue.entries() if provider is None or e.provider == provider]
    if as_json:
        return orjson.dumps(
            {
                "sources": catalogue.sources,
                "models": [_entry_json(e, today, catalogue) for e in entries],
            }
        ).decode()
    rows = []
    for e in entries:
        life = lifecycle_of(e.deprecated, e.shutdown_date, today, e.successor)
        rows.append(
            [
                e.id,
                _num(e.context_window),
                _num(e.max_output_tokens),
                f"{_num(e.prices.input)}/{_num(e.prices.output)}",
                _num(e.prices.cached_input),
                _capabilities(e.capabilities),
                life.label,
            ]
        )
    headers = ["MODEL", "CONTEXT", "MAX OUT", "$IN/$OUT", "$CACHED", "CAPABILITIES", "STATUS"]
    sources = ", ".join(
        f"{s.get('name')} (generated {s.get('generated')})" for s in catalogue.sources
    )
    return _table(headers, rows) + f"\n{len(entries)} models; sources: {sources or 'none'}"


def _entry_json(e: ModelEntry, today: dt.date, catalogue: Catalogue) -> dict[str, Any]:
    life = lifecycle_of(e.deprecated, e.shutdown_date, today, e.successor)
    return {
        "id": e.id,
        "provider": e.provider,
        "model": e.model,
        "context_window": e.context_window,
        "max_output_tokens": e.max_output_tokens,
        "price": e.prices.as_dict(),
        "capabilities": e.capabilities.as_dict(),
        "lifecycle": _life_json(life),
        "source": e.source,
        "reference": e.reference,
        "private": catalogue.is_private(e.id),
    }


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    today: dt.date | None = None,
) -> int:
    """0 on success, 1 when the config cannot be loaded, 2 on usage errors."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    day = today or today_utc()
    if args.config is None:
        print(catalogue_listing(shipped(), day, args.json, args.provider), file=out)
        return 0
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"config {args.config} is invalid:\n{exc}", file=err)
        return 1
    if args.all:
        base = Path(args.config).parent
        catalogue, _ = load([base / f for f in config.catalogue.files], config.catalogue.shipped)
        print(catalogue_listing(catalogue, day, args.json, args.provider), file=out)
    else:
        print(configured(config, day, args.json), file=out)
    return 0
