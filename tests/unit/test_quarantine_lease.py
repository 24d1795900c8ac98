"""Quarantine in planning (memory backend) and the in-memory regression lease."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from gateway.config import parse_config
from gateway.regress.auto import attach
from gateway.regress.lease import MemoryLease
from gateway.runtime import Gateway
from gateway.streaming.events import TextDelta
from gateway.streaming.plan import Winner
from tests.unit.test_pipeline import config, harness


async def test_a_quarantined_deployment_leaves_races_unless_it_is_the_only_one() -> None:
    data = config()
    data["routes"]["solo"] = {"strategy": "fallback", "deployments": ["a"]}
    async for h in harness(data):
        await h.gateway.quarantine.add("a", {"by": "test"})
        answer = await h.open()
        h.fakes["b"].send(TextDelta("ok"))
        outcome = await answer.first()
        assert isinstance(outcome, Winner) and outcome.deployment == "b"
        await answer.aclose()
        answer = await h.open(model="solo")  # nothing else: it serves rather than refuse
        h.fakes["a"].send(TextDelta("ok"))
        outcome = await answer.first()
        assert isinstance(outcome, Winner) and outcome.deployment == "a"
        await answer.aclose()
        assert h.fakes.opened == ["b", "a"]
        text = h.gateway.metrics.render().decode()
        assert 'gateway_deployment_quarantined{deployment="a"} 1.0' in text
        assert await h.gateway.quarantine.release("a") is True
        assert await h.gateway.quarantine.release("a") is False
        assert 'gateway_deployment_quarantined{deployment="a"} 0.0' in (
            h.gateway.metrics.render().decode()
        )


async def test_memory_lease_is_taken_once_until_it_expires() -> None:
    now = [100.0]
    lease = MemoryLease(clock=lambda: now[0])
    assert await lease.acquire("alpha:v2", 60) is True
    assert await lease.acquire("alpha:v2", 60) is False
    assert await lease.acquire("alpha:v3", 60) is True
    now[0] += 61
    assert await lease.acquire("alpha:v2", 60) is True


def test_attach_leaves_automatic_runs_off_when_the_suite_cannot_load(tmp_path: Path) -> None:
    data = config(auto_regress={"suite": str(tmp_path / "missing.yaml")})
    gateway = Gateway(parse_config(data))
    with capture_logs() as logs:
        assert attach(gateway) is None
    assert gateway.services == [] and gateway.regressions is None
    assert [e["event"] for e in logs] == ["auto_regress_disabled"]
    assert attach(Gateway(parse_config(config()))) is None  # not configured
