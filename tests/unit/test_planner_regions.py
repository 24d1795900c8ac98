"""Learning per region: a thin (deployment, region) cell is not predicted from other regions'
samples, and a race gives its last slot to the candidate least known in the client's region."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import parse_config
from gateway.latency import LatencyProfiles, MemoryStore
from gateway.latency.select import least_known_in_last_slot
from gateway.request import ChatRequest
from gateway.routing.health import HealthRegistry
from gateway.routing.planner import CandidatePlanner
from gateway.routing.table import RouteTable

T0 = 1_741_093_200.0  # 2025-03-04 13:00 UTC
PRIOR = (800.0, 2000.0)
DEPLOYMENTS = ("paris", "virginia", "tokyo")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def profiles(min_samples: int = 10) -> LatencyProfiles:
    return LatencyProfiles(MemoryStore(), min_samples=min_samples, clock=Clock(T0), cache_ttl_s=0)


def feed(p: LatencyProfiles, deployment: str, region: str, ttft_s: float, n: int = 10) -> None:
    for i in range(n):
        p.record_attempt(deployment, region, T0, ttft_s=ttft_s * (1 + i * 0.001))


# -- the profile: borrowed estimates ------------------------------------------------------


def test_other_regions_samples_never_make_a_region_look_faster_than_the_prior() -> None:
    p = profiles()
    feed(p, "paris", "eu", 0.2)  # fast from the EU
    eu = p.ttft_quantile("paris", "eu", 13, 0.5, PRIOR)
    assert eu.level == "region_hour" and not eu.borrowed and eu.own_samples == pytest.approx(10)
    assert abs(eu.value_s - 0.2) < 0.01
    us = p.ttft_quantile("paris", "us", 13, 0.5, PRIOR)
    assert us.borrowed and us.level == "hour" and us.own_samples == 0
    assert us.value_s == 0.8  # the prior's median, not the EU's 0.2 s


def test_borrowed_slowness_is_kept_as_a_pessimistic_prior() -> None:
    p = profiles()
    feed(p, "paris", "apac", 3.0)  # slow from APAC
    us = p.ttft_quantile("paris", "us", 13, 0.5, PRIOR)
    assert us.borrowed and abs(us.value_s - 3.0) < 0.04


def test_thin_own_cell_is_counted_and_a_full_one_answers_for_itself() -> None:
    p = profiles()
    feed(p, "paris", "eu", 0.2)
    feed(p, "paris", "us", 0.9, n=4)  # thin: 4 < 10
    us = p.ttft_quantile("paris", "us", 13, 0.5, PRIOR)
    assert us.borrowed and us.own_samples == pytest.approx(4) and us.value_s == 0.8
    feed(p, "paris", "us", 0.9, n=6)
    us = p.ttft_quantile("paris", "us", 13, 0.5, PRIOR)
    assert not us.borrowed and us.level == "region_hour" and abs(us.value_s - 0.9) < 0.02


def test_a_request_without_region_uses_every_region_as_its_own() -> None:
    p = profiles()
    feed(p, "paris", "eu", 0.2)
    anywhere = p.ttft_quantile("paris", "", 13, 0.5, PRIOR)
    assert anywhere.level == "hour" and not anywhere.borrowed and anywhere.value_s < 0.25


# -- the slot rule ---------------------------------------------------------------------------


def test_least_known_takes_the_last_slot() -> None:
    own = {"a": 50.0, "b": 50.0, "c": 3.0, "d": 0.0}.__getitem__
    assert least_known_in_last_slot(["a", "b", "c", "d"], own, 2, 10) == ["a", "d", "b", "c"]
    assert least_known_in_last_slot(["a", "b", "c", "d"], own, 3, 10) == ["a", "b", "d", "c"]
    assert least_known_in_last_slot(["a", "b", "c", "d"], own, 1, 10) is None  # not a race
    known = {"a": 0.0, "b": 50.0, "c": 10.0}.__getitem__
    assert least_known_in_last_slot(["a", "b", "c"], known, 2, 10) is None  # rest all known


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=7),
    st.integers(1, 8),
    st.integers(1, 20),
)
def test_least_known_slot_properties(samples: list[int], k: int, min_samples: int) -> None:
    ranked = [f"d{i}" for i in range(len(samples))]
    own = dict(zip(ranked, map(float, samples), strict=True))
    out = least_known_in_last_slot(ranked, own.__getitem__, k, min_samples)
    rest = ranked[k - 1 :] if k >= 2 else []
    thin = [n for n in rest if own[n] < min_samples]
    if not thin or len(ranked) < k:
        assert out is None
        return
    assert out is not None and sorted(out) == sorted(ranked)
    assert out[: k - 1] == ranked[: k - 1]  # the best-predicted still race
    assert own[out[k - 1]] == min(own[n] for n in rest)
    assert out[k - 1] == next(n for n in rest if own[n] == min(own[m] for m in rest))
    others = [n for n in ranked if n != out[k - 1]]
    assert [n for n in out if n != out[k - 1]] == others  # everyone else keeps the order


# -- the planner -------------------------------------------------------------------------------


def planner(p: LatencyProfiles, *, explore: bool = True) -> tuple[CandidatePlanner, RouteTable]:
    config = parse_config(
        {
            "latency": {"regions": ["eu", "us", "apac"], "exploration": 0.0, "min_samples": 10},
            "providers": {"sim": {"kind": "openai", "base_url": "http://127.0.0.1:1"}},
            "deployments": {
                name: {"provider": "sim", "model": name, "prior": {"ttft_p50_ms": 800}}
                for name in DEPLOYMENTS
            },
            "routes": {
                "chat": {"strategy": "race", "k": 2, "deployments": list(DEPLOYMENTS)},
                "hedged": {"strategy": "hedge", "k": 2, "deployments": list(DEPLOYMENTS)},
            },
        },
        env={},
    )
    health = HealthRegistry(dict.fromkeys(DEPLOYMENTS, 0.05), clock=Clock(T0))
    plan = CandidatePlanner(
        config, health, p, rng=random.Random(1), clock=Clock(T0), explore_least_known=explore
    )
    return plan, RouteTable(config)


CHAT = ChatRequest(model="chat", messages=[{"role": "user", "content": "hi"}], stream=True)


def order(plan: CandidatePlanner, table: RouteTable, region: str, route: str = "chat") -> list[str]:
    resolved = table.get(route)
    assert resolved is not None
    return [c.deployment.name for c in plan.plan(CHAT, resolved, region).candidates]


def test_us_traffic_is_not_sent_to_a_deployment_measured_fast_only_from_the_eu() -> None:
    p = profiles()
    feed(p, "paris", "eu", 0.2)
    feed(p, "virginia", "us", 0.4)
    plan, table = planner(p)
    assert order(plan, table, "us")[0] == "virginia"  # paris is not 0.2 s from the US
    assert order(plan, table, "eu")[0] == "paris"


def test_a_race_explores_the_least_known_candidate_for_the_clients_region() -> None:
    p = profiles()
    feed(p, "virginia", "us", 0.4)
    feed(p, "paris", "us", 0.5, n=3)  # thin, but better known than tokyo
    plan, table = planner(p)
    assert order(plan, table, "us")[:2] == ["virginia", "tokyo"]
    feed(p, "tokyo", "us", 0.7, n=5)  # now paris (3) is the least known
    assert order(plan, table, "us")[:2] == ["virginia", "paris"]
    feed(p, "paris", "us", 0.9, n=7)
    feed(p, "tokyo", "us", 0.7, n=5)  # every cell known: the two best race
    assert order(plan, table, "us")[:2] == ["virginia", "tokyo"]
    assert order(plan, table, "us", route="hedged")[:2] == ["virginia", "tokyo"]


def test_without_least_known_exploration_the_two_best_race() -> None:
    p = profiles()
    feed(p, "virginia", "us", 0.4)
    feed(p, "paris", "us", 0.5, n=3)
    plan, table = planner(p, explore=False)
    assert order(plan, table, "us")[:2] == ["virginia", "paris"]  # prior order among the rest


def test_hedges_do_not_spend_their_second_slot_on_exploration() -> None:
    p = profiles()
    feed(p, "virginia", "us", 0.4)
    feed(p, "tokyo", "us", 0.6)
    plan, table = planner(p)
    assert order(plan, table, "us", route="hedged")[:2] == ["virginia", "tokyo"]
    assert order(plan, table, "us")[:2] == ["virginia", "paris"]
