"""A deployment's model facts: the catalogue entry it inherits from, with the config's
own values on top (`catalogue:` section, and a deployment's `catalogue`, `price`,
`context_window`, `max_output_tokens`, `capabilities`, `deprecated`, `shutdown_date`)."""

from __future__ import annotations

import datetime as dt
import difflib
from pathlib import Path
from typing import Any

from gateway.catalogue.entry import (
    CAPABILITIES,
    PRICE_FIELDS,
    Capabilities,
    ModelEntry,
    Prices,
    parse_capabilities,
    parse_date,
)
from gateway.catalogue.lifecycle import Lifecycle, lifecycle_of
from gateway.catalogue.store import Catalogue, load
from gateway.config.model import CatalogueConfig, Config, PriceConfig
from gateway.config.sections import optional_int, optional_number
from gateway.config.validate import MISSING, Reader, kind_of, show


def catalogue_section(r: Reader, base_dir: Path | None) -> tuple[CatalogueConfig, Catalogue]:
    """`catalogue: {files: [...], shipped: true}`; relative paths are from the config file."""
    files = r.string_list("files") or ()
    shipped = r.boolean("shipped", True)
    r.finish()
    paths = [Path(f) if base_dir is None else base_dir / f for f in files]
    catalogue, problems = load(paths, shipped)
    for i, message in problems:
        r.problem(f"files[{i}]", message)
    return CatalogueConfig(files=files, shipped=shipped), catalogue


def _entry(r: Reader, model: str, kind: str | None, catalogue: Catalogue) -> ModelEntry | None:
    raw = r.raw("catalogue")
    if raw is False:
        return None
    if raw is MISSING or raw is None:
        if not model or not kind:
            return None
        return catalogue.find(model, kind).entry
    if not isinstance(raw, str) or not raw:
        r.problem("catalogue", f"must be a catalogue entry id or false, got {kind_of(raw)}")
        return None
    entry = catalogue.get(raw)
    if entry is None:
        close = difflib.get_close_matches(raw, [e.id for e in catalogue.entries()], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        r.problem("catalogue", f"no catalogue entry {show(raw)}{hint}")
    return entry


def deployment_facts(
    r: Reader, model: str, kind: str | None, catalogue: Catalogue
) -> dict[str, Any]:
    """DeploymentConfig fields for the facts, and `facts_from` naming where each came from."""
    entry = _entry(r, model, kind, catalogue)
    source = entry.source if entry is not None else None
    came: dict[str, str] = {}

    def pick(name: str, own: Any, inherited: Any, given: bool) -> Any:
        if given:
            came[name] = "config"
            return own
        if inherited is not None and source is not None:
            came[name] = source
        return inherited

    pr = r.section("price")
    prices = entry.prices if entry is not None else Prices()
    price: dict[str, Any] = {}
    for name in PRICE_FIELDS:
        own = optional_number(pr, name)
        price[name] = pick(f"price.{name}", own, getattr(prices, name), own is not None)
    pr.finish()
    for name in ("input", "output"):
        price[name] = price[name] or 0.0
    problems: list[str] = []
    own_caps = parse_capabilities(
        None if r.raw("capabilities") is MISSING else r.raw("capabilities"),
        problems,
        r.at("capabilities"),
    )
    for problem in problems:
        r.ctx.add(*problem.split(": ", 1))
    caps = entry.capabilities if entry is not None else Capabilities()
    for name in CAPABILITIES:
        pick(f"capabilities.{name}", None, getattr(caps, name), getattr(own_caps, name) is not None)
    shutdown_given = r.has("shutdown_date")
    shutdown = None
    if shutdown_given and r.raw("shutdown_date") is not None:
        shutdown = parse_date(r.raw("shutdown_date"))
        if shutdown is None:
            r.problem("shutdown_date", "must be a date YYYY-MM-DD (or null: none announced)")
    r.raw("shutdown_date")
    window = optional_int(r, "context_window")
    max_out = optional_int(r, "max_output_tokens")
    deprecated_given = r.has("deprecated")
    return {
        "price": PriceConfig(**price),
        "context_window": pick(
            "context_window", window, entry and entry.context_window, window is not None
        ),
        "max_output_tokens": pick(
            "max_output_tokens", max_out, entry and entry.max_output_tokens, max_out is not None
        ),
        "capabilities": caps.merged(own_caps),
        "deprecated": pick(
            "deprecated",
            r.boolean("deprecated", False),
            entry.deprecated if entry is not None else None,
            deprecated_given,
        )
        or False,
        "shutdown_date": pick(
            "shutdown_date", shutdown, entry and entry.shutdown_date, shutdown_given
        ),
        "successor": entry.successor if entry is not None else None,
        "catalogue_id": entry.id if entry is not None else None,
        "facts_from": came,
    }


def lifecycles(config: Config, today: dt.date) -> list[tuple[str, Lifecycle]]:
    """Each deployment's model lifecycle that needs attention (not `active`), by name."""
    out = []
    for name, dep in config.deployments.items():
        life = lifecycle_of(dep.deprecated, dep.shutdown_date, today, dep.successor)
        if life.state != "active":
            out.append((name, life))
    return out
