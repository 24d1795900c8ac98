"""How the gateway reaches Redis, chosen by config: TLS (`rediss://`) with an ACL user and
password, Sentinel (`redis+sentinel://`), and credentials that never reach a log line,
an error or a summary."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.config import parse_config
from gateway.config.summary import summarize
from gateway.redislayer import RedisLayer
from gateway.routing.ratelimit import Limit, RedisRateLimiter, key_limit
from gateway.routing.spend import RedisSpendTracker
from gateway.scrub import config_secrets
from tests.redis_servers import (
    MISSING_REASON,
    REDIS_BINARIES,
    cli,
    redis_node,
    redis_sentinel,
    tls_files,
)

pytestmark = pytest.mark.skipif(not REDIS_BINARIES, reason=MISSING_REASON)

PASSWORD = "pw-marker-7f3a9c2e1b"  # a marker: must appear in no log line


def state_config(state: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    return parse_config({"state": {"backend": "redis", **state}}, env=env or {})


async def use(layer: RedisLayer) -> bool:
    """A rate-limit take through the layer: True when Redis answered (not a local view)."""
    limiter = RedisRateLimiter(layer, {key_limit("k"): Limit(rpm=10)}, prefix=layer.prefix)
    decision = await limiter.check_and_take(key_limit("k"))
    return decision.allowed and not decision.degraded


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
async def test_tls_with_an_acl_user_and_no_password_in_any_log() -> None:
    workdir = tempfile.mkdtemp(prefix="rg-tls-")
    try:
        tls = tls_files(workdir)
        args = (
            "--port", "0", "--tls-port", "{port}",
            "--tls-cert-file", tls["srv.crt"], "--tls-key-file", tls["srv.key"],
            "--tls-ca-cert-file", tls["ca.crt"], "--tls-auth-clients", "no",
            "--user", "default", "off",
            "--user", "gateway", "on", f">{PASSWORD}", "~*", "&*", "+@all",
        )  # fmt: skip
        with redis_node(*args, tls=True) as node:
            env = {"REDIS_PASSWORD": PASSWORD}
            url = f"rediss://gateway@127.0.0.1:{node.port}/0"
            good = state_config(
                {"url": url, "password": "env:REDIS_PASSWORD", "tls_ca_file": tls["ca.crt"]}, env
            )
            assert PASSWORD in config_secrets(good)  # scrubbed from whatever reaches a client
            assert PASSWORD not in summarize(good) and PASSWORD not in repr(good.state)
            layer = RedisLayer.from_config(good.state)
            try:
                assert await use(layer)
            finally:
                await layer.close()

            # a wrong password, and one written in the URL: refused, logged, never shown
            for state in (
                {"url": url, "password": "env:WRONG", "tls_ca_file": tls["ca.crt"]},
                {
                    "url": f"rediss://gateway:{PASSWORD}x@127.0.0.1:{node.port}/0",
                    "tls_ca_file": tls["ca.crt"],
                },
            ):
                bad = state_config(state, {"WRONG": PASSWORD + "x"})
                with capture_logs() as logs:
                    layer = RedisLayer.from_config(bad.state)
                    try:
                        assert not await use(layer)
                        spend = RedisSpendTracker(layer, prefix="p")
                        spend.add("k", 1.0)
                        await spend.flush()
                    finally:
                        await layer.close()
                assert logs and any(e["event"].startswith("redis unavailable") for e in logs)
                assert PASSWORD not in repr(logs)
                assert PASSWORD not in layer.settings.redacted
                assert PASSWORD not in repr(layer.settings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def test_sentinel_url_and_config_fields() -> None:
    with redis_node() as master, redis_sentinel(master.port) as sentinel_port:
        prefix = f"t{uuid.uuid4().hex[:8]}"
        for state in (
            {"url": f"redis+sentinel://127.0.0.1:{sentinel_port}/mymaster/0", "prefix": prefix},
            {
                "url": "redis://ignored:1/0",
                "sentinels": [f"127.0.0.1:{sentinel_port}"],
                "sentinel_master": "mymaster",
                "prefix": prefix,
            },
        ):
            layer = RedisLayer.from_config(state_config(state).state)
            try:
                assert layer.settings.topology == "sentinel"
                assert await use(layer)
            finally:
                await layer.close()
        keys = cli(master.port, "keys", f"*{prefix}*").split()
        assert keys  # the takes went to the master the sentinel named


def test_topology_config_errors() -> None:
    from gateway.config import ConfigError

    with pytest.raises(ConfigError) as err:
        state_config({"url": "redis://h:1", "cluster": True, "sentinels": ["h:26379"]})
    assert "choose one" in str(err.value)
    with pytest.raises(ConfigError) as err:
        state_config({"url": "redis://h:1", "sentinels": ["nope"]})
    assert "state.sentinels[0]: must be host:port" in str(err.value)
