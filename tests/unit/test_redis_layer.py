"""The Redis layer without a server: settings per topology (credentials kept out of what
is shown), the breaker (opens, remembers, probes, closes) and the key layout."""

from __future__ import annotations

import pytest
from redis.exceptions import ClusterError

from gateway.config import parse_config
from gateway.redislayer import RedisGuard, RedisSettings, RedisUnavailable, one_slot, tagged
from gateway.redislayer.batcher import REDIRECT_RETRIES, CommandBatcher
from tests.redis_support import eventually


def settings(state: dict[str, object], env: dict[str, str] | None = None) -> RedisSettings:
    config = parse_config({"state": {"backend": "redis", **state}}, env=env or {})
    return RedisSettings.from_config(config.state)


def test_topologies_from_config() -> None:
    single = settings({"url": "rediss://u:secret-pw@h:6380/3"})
    assert (single.topology, single.db, single.tls) == ("single", 3, True)
    assert (single.username, single.password) == ("u", "secret-pw")
    assert single.url == "rediss://h:6380/3"  # credentials are not kept in the URL
    assert "secret-pw" not in single.redacted and "secret-pw" not in repr(single)

    cluster = settings({"url": "redis://h:7000", "cluster": True, "request_timeout_ms": 3})
    assert cluster.topology == "cluster" and cluster.request_timeout_s == pytest.approx(0.003)

    sentinel = settings({"url": "redis+sentinel://:pw@s1:26379,s2/mymaster/2"})
    assert sentinel.topology == "sentinel"
    assert sentinel.sentinels == (("s1", 26379), ("s2", 26379))
    assert (sentinel.sentinel_master, sentinel.db, sentinel.password) == ("mymaster", 2, "pw")
    assert sentinel.redacted == "sentinel s1:26379,s2:26379 master mymaster"

    fields = settings(
        {
            "url": "redis://:url-pw@x/1",
            "sentinels": ["a:1", "b:2"],
            "sentinel_master": "m",
            "username": "gw",
            "password": "env:PW",
        },
        {"PW": "config-pw"},
    )
    assert fields.sentinels == (("a", 1), ("b", 2)) and fields.db == 1
    assert (fields.username, fields.password) == ("gw", "config-pw")  # the config wins


class FakeRedis:
    def __init__(self) -> None:
        self.up = False
        self.pings = 0

    async def ping(self) -> bool:
        self.pings += 1
        if not self.up:
            raise ConnectionError("down")
        return True


async def failing() -> None:
    raise TimeoutError


async def test_breaker_opens_remembers_probes_and_closes() -> None:
    redis = FakeRedis()
    guard = RedisGuard(redis.ping, probe_interval_s=0.01, open_after=3)
    for _ in range(2):
        with pytest.raises(RedisUnavailable):
            await guard.call(failing, timeout_s=1, part="x")
    assert not guard.open  # two timeouts in a row: not yet an outage
    with pytest.raises(RedisUnavailable):
        await guard.call(failing, timeout_s=1, part="x")
    assert guard.open and guard.outages == 1

    calls = 0

    async def counted() -> int:
        nonlocal calls
        calls += 1
        return 1

    with pytest.raises(RedisUnavailable):
        await guard.call(counted, timeout_s=1, part="x")
    assert calls == 0 and guard.skipped == 1  # remembered: not even tried

    await eventually(lambda: redis.pings >= 3)  # probing in the background, still down
    assert guard.open
    redis.up = True
    await eventually(lambda: not guard.open)
    assert await guard.call(counted, timeout_s=1, part="x") == 1
    assert guard.outages == 1
    await guard.close()


async def test_hung_opens_at_once() -> None:
    redis = FakeRedis()
    guard = RedisGuard(redis.ping, probe_interval_s=10)
    guard.hung("request path", 0.25)
    assert guard.open and guard.outages == 1
    await guard.close()


async def test_a_cluster_opens_only_when_no_node_answers() -> None:
    """With `confirm` (a Cluster): failures of one node (a master failing over) are decided
    locally call by call and declare nothing; when no node answers, the breaker opens."""
    redis, cluster = FakeRedis(), FakeRedis()
    cluster.up = True  # the other nodes answer
    guard = RedisGuard(redis.ping, probe_interval_s=10, open_after=3, confirm=cluster.ping)
    for _ in range(3):
        with pytest.raises(RedisUnavailable):
            await guard.call(failing, timeout_s=1, part="x")
    await eventually(lambda: guard.partial == 1)
    assert not guard.open and guard.outages == 0 and cluster.pings == 1
    cluster.up = False  # now the whole cluster is away
    for _ in range(3):
        with pytest.raises(RedisUnavailable):
            await guard.call(failing, timeout_s=1, part="x")
    await eventually(lambda: guard.open)
    assert guard.outages == 1 and guard.partial == 1
    await guard.close()


def test_tagged_keys_share_a_slot() -> None:
    keys = [tagged("rg", "spend", "k1", "20240101"), tagged("rg", "spend", "seq", "i1")]
    assert one_slot(keys) and keys[0] == "{rg:spend}:k1:20240101"
    assert not one_slot([tagged("rg", "a", "x"), tagged("rg", "b", "x")])


class BouncingPipeline:
    """A cluster pipeline whose first `bounces` replies are redis-py's redirect give-up."""

    def __init__(self, bounces: int, sent: list[str]) -> None:
        self.bounces, self.sent, self.commands = bounces, sent, []

    def eval(self, name: str) -> None:
        self.commands.append(name)

    async def execute(self, raise_on_error: bool) -> list[object]:
        self.sent.extend(self.commands)
        replies: list[object] = []
        for name in self.commands:
            if self.sent.count(name) <= self.bounces:
                replies.append(ClusterError("TTL exhausted."))
            else:
                replies.append(f"ran {name}")
        return replies


@pytest.mark.parametrize("bounces", [0, 2, REDIRECT_RETRIES])
async def test_a_bounced_command_is_sent_again_until_it_runs(bounces: int) -> None:
    sent: list[str] = []
    guard = RedisGuard(FakeRedis().ping, probe_interval_s=10)
    batcher = CommandBatcher(lambda: BouncingPipeline(bounces, sent), guard)
    reply = await batcher.submit(lambda pipe: pipe.eval("take"))
    assert reply == "ran take" and sent == ["take"] * (bounces + 1)
    assert batcher.resent == bounces
    await batcher.close()
    await guard.close()


async def test_a_command_that_keeps_bouncing_fails_with_the_bounce() -> None:
    sent: list[str] = []
    guard = RedisGuard(FakeRedis().ping, probe_interval_s=10)
    batcher = CommandBatcher(lambda: BouncingPipeline(REDIRECT_RETRIES + 1, sent), guard)
    with pytest.raises(ClusterError, match="TTL exhausted"):
        await batcher.submit(lambda pipe: pipe.eval("take"))
    assert sent == ["take"] * (REDIRECT_RETRIES + 1)  # the first send and the retries
    await batcher.close()
    await guard.close()
