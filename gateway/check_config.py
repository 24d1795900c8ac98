"""`race-gateway check-config FILE`: validate a config file and summarize it.

An entry point, not part of the config package: besides the config's own validation it
runs the routing layer's tier checks, and config sits below routing.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import TextIO

from gateway.catalogue.lifecycle import today_utc
from gateway.config.facts import lifecycles
from gateway.config.model import Config
from gateway.config.summary import summarize
from gateway.config.validate import ConfigError, ConfigFileError
from gateway.config_checks import (
    config_problems,
    embedding_problems,
    read_config,
    route_tier_problems,
)
from gateway.providers.base import ProviderSettings, can_continue
from gateway.providers.registry import create
from gateway.regress.suite import SuiteError, load_suite

__all__ = [
    "auto_regress_problems",
    "check_config_main",
    "embedding_problems",
    "heartbeat_warnings",
    "http2_warnings",
    "route_tier_problems",
]


def check_config_main(
    path: str,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    today: dt.date | None = None,
) -> int:
    """Print a summary and return 0, or print every problem and return 1. Deployments whose
    model is deprecated or shuts down within 30 days are warnings; a model already shut
    down is a problem."""
    try:
        config, _ = read_config(path)
    except ConfigFileError as e:
        for problem in e.problems:
            print(f"config {problem}", file=err)
        return 1
    except ConfigError as e:
        print(f"config {path} has {len(e.problems)} problem(s):", file=err)
        for problem in e.problems:
            print(f"  {problem}", file=err)
        return 1
    today = today or today_utc()
    problems = config_problems(config, today) + auto_regress_problems(config)
    for name, life in lifecycles(config, today):
        if life.state != "retired":
            text = f"deployments.{name}: {life.describe(config.deployments[name].model)}"
            print(f"warning: {text}", file=err)
    if problems:
        print(f"config {path} has {len(problems)} problem(s):", file=err)
        for problem in problems:
            print(f"  {problem}", file=err)
        return 1
    print(summarize(config), file=out)
    for warning in heartbeat_warnings(config) + resume_warnings(config) + http2_warnings(config):
        print(f"warning: {warning}", file=err)
    return 0


def http2_warnings(config: Config) -> list[str]:
    """Providers that speak HTTP/2 over plain http: there is no TLS handshake to agree on
    the protocol, so the server must take HTTP/2 with prior knowledge (h2c), which most
    local servers (vLLM, Ollama) do not."""
    return [
        f"providers.{name}: http2 over plain http speaks HTTP/2 directly (h2c, prior "
        "knowledge): the server must support it, or every request fails"
        for name, provider in config.providers.items()
        if provider.http2 and provider.base_url.lower().startswith("http://")
    ]


def resume_warnings(config: Config) -> list[str]:
    """Routes with `resume` where a cut answer has no other deployment to go on on: a
    resume needs a deployment that can continue a prefix besides the one that was cut."""
    able: dict[str, bool] = {}
    for name, provider in config.providers.items():
        settings = ProviderSettings(name, provider.kind, provider.base_url, None, provider.options)
        try:
            able[name] = can_continue(create(settings))
        except (KeyError, ValueError):  # unknown kind or bad options: reported by the loader
            able[name] = False
    warnings = []
    for name, route in config.routes.items():
        if not route.resume:
            continue
        members = dict.fromkeys(route.deployments)
        for tier in route.tiers:
            members.update(dict.fromkeys(tier.deployments))
        continuing = [
            d
            for d in members
            if config.deployments[d].continuation and able.get(config.deployments[d].provider)
        ]
        if len(continuing) < 2:
            which = ", ".join(continuing) or "none"
            warnings.append(
                f"routes.{name}.resume: {len(continuing)} deployment(s) can continue a prefix "
                f"({which}); a cut answer can only go on on another one. Kinds that can: "
                "anthropic, deepseek, mistral, vllm, ollama, ollama_openai (or a provider "
                "with the `continuation` option)."
            )
    return warnings


def heartbeat_warnings(config: Config) -> list[str]:
    """Routes whose keep-alives can start before a first-token timeout has decided.

    A keep-alive sends the status line (200) and headers; an attempt's failure after
    that can only be an in-stream error, so a request that fails before its first token
    loses its HTTP status (504 on timeouts) for monitors, load balancers and SDK retries.
    """
    warnings = []
    for name, route in config.routes.items():
        after = route.heartbeat_after_s
        if after is None:
            continue
        members = dict.fromkeys(route.deployments)
        for tier in route.tiers:
            members.update(dict.fromkeys(tier.deployments))
        slowest = max(members, key=lambda d: config.deployments[d].ttft_timeout_s)
        timeout = config.deployments[slowest].ttft_timeout_s
        if after <= timeout:
            warnings.append(
                f"routes.{name}.heartbeat_after_s: {after:g} s is not above the "
                f"ttft_timeout_s of {slowest} ({timeout:g} s): keep-alives commit HTTP 200 "
                "before the first-token timeout decides, so a streamed request whose "
                "candidates all fail before their first token gets 200 and an in-stream "
                "error instead of its error status (504 on timeouts). Raise it above "
                f"{timeout:g} s, or leave it unset unless a proxy cuts idle connections."
            )
    return warnings


def auto_regress_problems(config: Config) -> list[str]:
    """The automatic regression suite must load (`serve` would run without it)."""
    if config.auto_regress is None:
        return []
    try:
        load_suite(config.auto_regress.suite)
    except SuiteError as exc:
        return [f"auto_regress.suite: {p}" for p in exc.problems]
    return []
