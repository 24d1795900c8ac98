"""Session-wide fixtures: a real three-master Redis Cluster started once for the whole run
(skipped with the reason where `redis-server` is missing), and `state_topology`, which
runs a shared-state test against a single node (REDIS_URL) and against that cluster; and
a throwaway TLS certificate (`certificate`) for the tests that serve TLS."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bench.procs import make_certificate
from gateway.redislayer import RedisLayer, RedisSettings
from tests.redis_servers import MISSING_REASON, REDIS_BINARIES, RedisClusterProcs, redis_cluster


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(key, certificate): a throwaway self-signed one for localhost and 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def cluster_procs() -> Iterator[RedisClusterProcs]:
    if not REDIS_BINARIES:
        pytest.skip(MISSING_REASON)
    with redis_cluster(masters=3) as cluster:
        yield cluster


@dataclass(frozen=True)
class Topology:
    name: str  # single | cluster
    url: str
    cluster: bool
    prefix: str  # unique per test

    def state(self, **extra: object) -> dict[str, object]:
        """A `state:` config section for this topology."""
        return {
            "backend": "redis",
            "url": self.url,
            "cluster": self.cluster,
            "prefix": self.prefix,
            **extra,
        }

    def layer(self) -> RedisLayer:
        """A layer with a generous request budget: these tests show sharing on a busy
        machine; the budget itself is shown by test_redis_freeze.py."""
        settings = RedisSettings.from_url(self.url, cluster=self.cluster)
        return RedisLayer(replace(settings, request_timeout_s=0.25), prefix=self.prefix)


@pytest.fixture(params=["single", "cluster"])
async def state_topology(request: pytest.FixtureRequest) -> AsyncIterator[Topology]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    if request.param == "single":
        url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
        topology = Topology("single", url, False, prefix)
    else:
        procs: RedisClusterProcs = request.getfixturevalue("cluster_procs")
        topology = Topology("cluster", procs.url, True, prefix)
    layer = topology.layer()
    try:
        await layer.client.ping()
    except Exception as exc:
        await layer.close()
        pytest.skip(f"no Redis answers for {topology.name} ({type(exc).__name__})")
    yield topology
    try:  # only this test's keys: every one holds the prefix
        if topology.cluster:
            keys = [k async for k in layer.client.scan_iter(match=f"*{prefix}*", count=1000)]
            for key in keys:
                await layer.client.delete(key)
        else:
            keys = [k async for k in layer.client.scan_iter(match=f"*{prefix}*", count=1000)]
            if keys:
                await layer.client.delete(*keys)
    finally:
        await layer.close()
