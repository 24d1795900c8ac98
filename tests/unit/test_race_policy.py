"""Race policies: the extra-load budget (LoadBudget) and the client-facing error (choose_error)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.streaming.events import UpstreamError
from gateway.streaming.policy import LoadBudget, choose_error
from tests.unit.fake_attempts import FakeClock


def err(
    status: int, type_: str = "server_error", retry_after_s: float | None = None
) -> UpstreamError:
    return UpstreamError(status, type_, f"status {status}", True, retry_after_s=retry_after_s)


def timeout() -> UpstreamError:
    return UpstreamError(504, "upstream_timeout", "no first token within 10s", True)


# -- LoadBudget ---------------------------------------------------------------


def spend_pattern(budget: LoadBudget, requests: int) -> list[bool]:
    out = []
    for _ in range(requests):
        budget.note_request()
        out.append(budget.try_spend())
    return out


def test_budget_half_alternates_between_extra_and_no_extra() -> None:
    budget = LoadBudget(0.5, clock=FakeClock())
    assert spend_pattern(budget, 8) == [True, False] * 4
    assert budget.spent == 4
    assert budget.refused == 4


def test_budget_zero_never_allows_extra() -> None:
    budget = LoadBudget(0.0, clock=FakeClock())
    assert spend_pattern(budget, 5) == [False] * 5
    assert budget.spent == 0
    assert budget.utilisation == 0.0


def test_budget_one_allows_one_extra_per_request() -> None:
    budget = LoadBudget(1.0, clock=FakeClock())
    assert spend_pattern(budget, 4) == [True] * 4
    budget.note_request()
    assert budget.try_spend() is True
    assert budget.try_spend() is False  # two extras for one request: over budget


def test_budget_window_forgets_old_requests_and_extras() -> None:
    clock = FakeClock()
    budget = LoadBudget(0.5, window_s=60.0, clock=clock)
    assert spend_pattern(budget, 2) == [True, False]
    clock.now = 30.0
    assert spend_pattern(budget, 1) == [True]  # 3 requests, 1 extra in window
    clock.now = 200.0  # everything above has left the window
    assert budget.utilisation == 0.0
    assert spend_pattern(budget, 2) == [True, False]
    assert budget.utilisation == pytest.approx(1.0)


def test_budget_without_requests_refuses() -> None:
    budget = LoadBudget(0.5, clock=FakeClock())
    assert budget.try_spend() is False


@settings(max_examples=100, deadline=None)
@given(
    st.floats(0.0, 2.0),
    st.lists(st.tuples(st.booleans(), st.floats(0.0, 5.0)), max_size=60),
)
def test_budget_never_exceeds_share_of_requests(
    share: float, steps: list[tuple[bool, float]]
) -> None:
    """An extra is granted exactly when extras in the window are below share * requests."""
    clock = FakeClock()
    budget = LoadBudget(share, window_s=10.0, clock=clock)
    requests: list[float] = []
    extras: list[float] = []
    for is_request, dt in steps:
        clock.now += dt
        if is_request:
            budget.note_request()
            requests.append(clock.now)
            continue
        horizon = clock.now - 10.0
        live_requests = sum(1 for t in requests if t > horizon)
        live_extras = sum(1 for t in extras if t > horizon)
        granted = budget.try_spend()
        assert granted == (live_extras < share * live_requests)
        if granted:
            extras.append(clock.now)


@settings(max_examples=150, deadline=None)
@given(
    st.floats(0.0, 2.0),
    st.floats(0.0, 3.0),
    st.lists(st.tuples(st.booleans(), st.floats(0.0, 5.0)), max_size=80),
)
def test_budget_with_floor_grants_up_to_the_larger_of_share_and_floor(
    share: float, floor: float, steps: list[tuple[bool, float]]
) -> None:
    """Granted exactly when extras in the window are below max(share * requests, floor * window)."""
    clock = FakeClock()
    budget = LoadBudget(share, window_s=10.0, clock=clock, min_extra_per_s=floor)
    requests: list[float] = []
    extras: list[float] = []
    for is_request, dt in steps:
        clock.now += dt
        if is_request:
            budget.note_request()
            requests.append(clock.now)
            continue
        horizon = clock.now - 10.0
        live_requests = sum(1 for t in requests if t > horizon)
        live_extras = sum(1 for t in extras if t > horizon)
        granted = budget.try_spend()
        assert granted == (live_extras < max(share * live_requests, floor * 10.0))
        if granted:
            extras.append(clock.now)
        assert budget.spent == len(extras)


def test_floor_lets_a_quiet_gateway_race_every_request() -> None:
    """One request a second, one extra each: a 0.5 share alone refuses half, the floor none."""
    clock = FakeClock()
    budget = LoadBudget(0.5, clock=clock, min_extra_per_s=1.0)
    granted = []
    for _ in range(600):  # ten minutes at 1 rps
        clock.now += 1.0
        budget.note_request()
        granted.append(budget.try_spend())
    assert all(granted)
    assert budget.refused == 0


def test_share_still_caps_extra_load_at_volume() -> None:
    """100 requests a second, one extra wanted each: about half are granted, as without a floor."""
    clock = FakeClock()
    budget = LoadBudget(0.5, clock=clock, min_extra_per_s=1.0)
    for _ in range(120 * 100):  # two minutes at 100 rps
        clock.now += 0.01
        budget.note_request()
        budget.try_spend()
    assert budget.spent == pytest.approx(6000, rel=0.01)  # half of 12,000 requests
    assert budget.snapshot()["extra_in_window"] == pytest.approx(3000, rel=0.01)  # 0.5 x 6,000


def test_route_budget_without_share_never_limits_races_but_limits_hedges() -> None:
    budget = LoadBudget.for_route(None, 1.0)
    assert not budget.covers("race")
    assert budget.covers("hedge")
    assert budget.max_extra_load == 0.5 and budget.min_extra_per_s == 1.0
    configured = LoadBudget.for_route(0.2, 0.0)
    assert configured.covers("race") and configured.covers("hedge")
    assert configured.max_extra_load == 0.2 and configured.min_extra_per_s == 0.0


def test_budget_snapshot_shows_rule_and_use() -> None:
    clock = FakeClock()
    budget = LoadBudget(0.5, window_s=10.0, clock=clock, min_extra_per_s=0.0)
    assert spend_pattern(budget, 4) == [True, False, True, False]
    snap = budget.snapshot()
    assert snap["spent"] == 2 and snap["refused"] == 2
    assert snap["requests_in_window"] == 4 and snap["extra_in_window"] == 2
    assert snap["utilisation"] == 1.0
    assert snap["limits_races"] is True


# -- choose_error ---------------------------------------------------------------


def test_no_errors_is_a_502() -> None:
    assert choose_error([]).status == 502


@pytest.mark.parametrize("client_status", [400, 413, 422])
def test_client_fault_beats_5xx_wherever_it_is(client_status: int) -> None:
    bad = err(client_status, "invalid_request_error")
    for errors in ([err(500), bad, err(503)], [bad, err(502)], [err(503), timeout(), bad]):
        assert choose_error(errors) is bad


def test_client_fault_beats_auth_and_rate_limit() -> None:
    bad = err(400, "invalid_request_error")
    assert choose_error([err(401), err(429, retry_after_s=1), bad]) is bad


def test_all_429_is_429_with_shortest_retry_after() -> None:
    chosen = choose_error([err(429, retry_after_s=5), err(429, retry_after_s=2), err(429)])
    assert chosen.status == 429
    assert chosen.retry_after_s == 2


def test_all_429_without_retry_after() -> None:
    chosen = choose_error([err(429), err(429)])
    assert chosen.status == 429
    assert chosen.retry_after_s is None


def test_other_4xx_beats_5xx() -> None:
    not_found = err(404, "not_found_error")
    assert choose_error([err(500), not_found, err(503)]) is not_found


@pytest.mark.parametrize("auth_status", [401, 403])
def test_upstream_auth_failure_becomes_502(auth_status: int) -> None:
    for errors in ([err(auth_status)], [err(500), err(auth_status)], [err(auth_status), err(503)]):
        chosen = choose_error(errors)
        assert chosen.status == 502
        assert chosen.type == "upstream_auth_error"
        assert chosen.code == "upstream_auth_error"
        assert chosen.retryable is False


def test_timeouts_alone_give_504() -> None:
    assert choose_error([timeout()]).status == 504
    assert choose_error([timeout(), err(408), err(504, "gateway_timeout")]).status == 504


def test_5xx_keeps_a_known_5xx_status() -> None:
    assert choose_error([err(503)]).status == 503
    assert choose_error([timeout(), err(500)]).status == 500


def test_odd_statuses_map_to_gateway_statuses() -> None:
    assert choose_error([err(0, "upstream_connection_error")]).status == 502
    assert choose_error([err(529, "overloaded_error")]).status == 503
    assert choose_error([err(520)]).status == 502


_STATUSES = st.sampled_from([0, 400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504, 529])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(_STATUSES, st.booleans(), st.none() | st.floats(0, 60)), min_size=1, max_size=6
    )
)
def test_choose_error_properties(specs: list[tuple[int, bool, float | None]]) -> None:
    errors = [
        UpstreamError(s, "upstream_timeout" if t else "server_error", "m", True, retry_after_s=r)
        for s, t, r in specs
    ]
    chosen = choose_error(errors)
    assert 400 <= chosen.status <= 599  # never a success, never "unknown"
    client = [e for e in errors if e.status in (400, 413, 422)]
    if client:
        assert chosen is client[0]
    elif all(e.status == 429 for e in errors):
        waits = [e.retry_after_s for e in errors if e.retry_after_s is not None]
        assert chosen.status == 429
        assert chosen.retry_after_s == (min(waits) if waits else None)
    elif any(e.status in (401, 403) for e in errors) and not any(
        400 <= e.status < 500 and e.status not in (401, 403, 408, 429) for e in errors
    ):
        assert chosen.status == 502
        assert chosen.type == "upstream_auth_error"
    # the chosen error is independent of input mutation: choose_error returns new objects
    # for rewritten statuses and never alters its inputs
    assert [e.status for e in errors] == [s for s, _, _ in specs]
