"""The console's record sinks: recent requests (bounded, no text), live per-second rates
(window, TTFT quantiles, win share, slot reuse) and spend split by winners and losers."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from gateway.console import ConsoleSinks
from gateway.console.ledger import CostLedger
from gateway.console.live import MAX_TTFT_SAMPLES, LiveRates, quantile
from gateway.console.recent import RecentRequests
from gateway.record import RequestOutcome, RequestRecord
from gateway.streaming.accounting import AttemptOutcome, AttemptRecord, RaceRecord
from gateway.streaming.events import UpstreamError, Usage

T0 = datetime(2026, 3, 31, 23, 59, 58, tzinfo=UTC).timestamp()  # a day and a month end soon


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def attempt(
    deployment: str,
    outcome: AttemptOutcome,
    *,
    ttft_s: float | None = None,
    prompt: int = 1000,
    output: int = 0,
    error: UpstreamError | None = None,
) -> AttemptRecord:
    return AttemptRecord(
        deployment,
        0.0,
        price_input=1.0,  # USD per million tokens: 1000 prompt tokens cost $0.001
        price_output=2.0,
        outcome=outcome,
        ttft_s=ttft_s,
        censored_ttft_s=0.2 if outcome == "cancelled" else None,
        usage=Usage(prompt=prompt, completion=output),
        error=error,
    )


def record(
    rid: str = "req_1",
    *,
    route: str = "chat",
    key: str = "key-1",
    outcome: RequestOutcome = "completed",
    status: int = 200,
    attempts: list[AttemptRecord] | None = None,
    ttft_s: float | None = 0.1,
) -> RequestRecord:
    attempts = attempts if attempts is not None else [attempt("a", "won", ttft_s=0.1, output=500)]
    winner = next((a.deployment for a in attempts if a.outcome == "won"), None)
    race = RaceRecord(rid, route, "race", "eu", attempts, winner, ttft_s if winner else None)
    return RequestRecord(
        rid, "chat", key, route, route=route, region="eu", status=status, outcome=outcome, race=race
    )


def refused(rid: str = "req_r") -> RequestRecord:
    return RequestRecord(rid, "chat", "anonymous", "chat", status=401, outcome="rejected")


# -- recent requests ------------------------------------------------------------------


def test_recent_keeps_the_newest_records_newest_first() -> None:
    clock = Clock()
    recent = RecentRequests(capacity=3, clock=clock)
    for i in range(5):
        clock.now = T0 + i
        recent.record(record(f"req_{i}"))
    assert len(recent) == 3
    views = recent.latest()
    assert [v["request_id"] for v in views] == ["req_4", "req_3", "req_2"]
    assert [v["at"] for v in views] == [T0 + 4, T0 + 3, T0 + 2]
    assert [v["request_id"] for v in recent.latest(2)] == ["req_4", "req_3"]
    assert recent.latest(0) == []


def test_recent_view_holds_the_race_but_no_text() -> None:
    recent = RecentRequests()
    err = UpstreamError(500, "server_error", "echo: my secret prompt text", True)
    attempts = [
        attempt("a", "won", ttft_s=0.123, prompt=1000, output=500),
        attempt("b", "cancelled", prompt=1000),
        attempt("c", "failed", prompt=0, error=err),
    ]
    recent.record(record(attempts=attempts, ttft_s=0.13))
    [view] = recent.latest()
    assert view["winner"] == "a" and view["route"] == "chat" and view["status"] == 200
    assert view["ttft_ms"] == 130.0
    assert (view["input_tokens"], view["output_tokens"]) == (1000, 500)
    assert view["cost_usd"] == pytest.approx(0.002 + 0.001)  # c failed with no tokens
    assert view["wasted_usd"] == pytest.approx(0.001)
    by_dep = {a["deployment"]: a for a in view["attempts"]}
    assert by_dep["a"]["outcome"] == "won" and by_dep["a"]["ttft_ms"] == 123.0
    assert by_dep["b"]["outcome"] == "cancelled" and by_dep["b"]["censored_ttft_ms"] == 200.0
    assert by_dep["c"]["error"] == {"status": 500, "type": "server_error"}
    assert b"secret prompt" not in orjson.dumps(view)


def test_recent_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RecentRequests(capacity=0)


# -- live rates ---------------------------------------------------------------------------


def test_live_counts_per_second_and_sums_the_window() -> None:
    clock = Clock(1000.0)
    live = LiveRates(clock=clock)
    won_b = [attempt("b", "won", ttft_s=0.3), attempt("a", "cancelled")]
    for at, rec in [
        (1000.2, record("r1")),
        (1000.7, record("r2", attempts=won_b, ttft_s=0.3)),
        (1001.1, refused()),
        (1003.5, record("r3", outcome="no_winner", status=502, attempts=[attempt("a", "failed")])),
        (1003.9, record("r4", outcome="client_cancelled")),
    ]:
        clock.now = at
        live.record(rec)
    clock.now = 1004.2
    snap = live.snapshot(5)
    assert snap["now"] == 1004 and snap["window_s"] == 5
    assert [s["t"] for s in snap["series"]] == [1000, 1001, 1002, 1003, 1004]
    assert [s["requests"] for s in snap["series"]] == [2, 1, 0, 2, 0]
    assert [s["rejected"] for s in snap["series"]] == [0, 1, 0, 0, 0]
    assert [s["errors"] for s in snap["series"]] == [0, 0, 0, 1, 0]
    totals = snap["totals"]
    assert (totals["requests"], totals["errors"], totals["rejected"]) == (5, 1, 1)
    assert totals["client_cancelled"] == 1 and snap["rps"] == 1.0
    assert totals["wasted_usd"] == pytest.approx(0.001)  # the cancelled attempt's prompt
    assert snap["wins"] == {"a": {"wins": 2, "share": 0.6667}, "b": {"wins": 1, "share": 0.3333}}
    assert snap["routes"]["chat"]["requests"] == 4  # the refusal had no route
    assert snap["routes"]["chat"]["ttft_samples"] == 3
    # the first second leaves the window
    assert live.snapshot(3)["totals"]["requests"] == 2


def test_live_ttft_quantiles_per_route_are_nearest_rank() -> None:
    clock = Clock(50.0)
    live = LiveRates(clock=clock)
    for i in range(1, 21):  # 10, 20, ... 200 ms
        live.record(record(f"r{i}", ttft_s=i / 100))
    live.record(record("other", route="cheap", ttft_s=0.5))
    routes = live.snapshot(10)["routes"]
    assert routes["chat"]["ttft_p50_ms"] == 100.0
    assert routes["chat"]["ttft_p95_ms"] == 190.0
    assert routes["cheap"]["ttft_p50_ms"] == routes["cheap"]["ttft_p95_ms"] == 500.0
    assert quantile([], 0.5) is None


def test_live_reuses_a_slot_when_its_second_comes_round() -> None:
    clock = Clock(100.0)
    live = LiveRates(horizon_s=10, clock=clock)
    live.record(record("old"))
    clock.now = 110.0  # same slot, ten seconds later
    live.record(record("new"))
    snap = live.snapshot(10)
    assert snap["totals"]["requests"] == 1
    assert [s["requests"] for s in snap["series"]][-1] == 1
    assert live.snapshot(999)["window_s"] == 10  # never more than the horizon


def test_live_keeps_a_bounded_number_of_ttft_samples_per_second() -> None:
    live = LiveRates(clock=Clock(7.0))
    for i in range(MAX_TTFT_SAMPLES + 100):
        live.record(record(f"r{i}", ttft_s=0.001 * (i + 1)))
    [second] = live.seconds(1)
    assert len(second.ttft["chat"]) == MAX_TTFT_SAMPLES
    assert second.ttft_seen["chat"] == MAX_TTFT_SAMPLES + 100
    assert live.snapshot(1)["totals"]["requests"] == MAX_TTFT_SAMPLES + 100


# -- spend by winners and losers ----------------------------------------------------------


def race_with_a_loser(rid: str, key: str = "key-1") -> RequestRecord:
    return record(
        rid,
        key=key,
        attempts=[
            attempt("a", "won", ttft_s=0.1, prompt=1000, output=500),  # $0.002
            attempt("b", "cancelled", prompt=1000),  # $0.001
        ],
    )


def test_ledger_splits_spend_between_winners_and_losers() -> None:
    ledger = CostLedger(clock=Clock())
    ledger.record(race_with_a_loser("r1"))
    ledger.record(race_with_a_loser("r2", key="key-2"))
    ledger.record(refused())  # no race: nothing spent
    snap = ledger.snapshot(["a", "b", "idle"])
    assert snap["day"] == "2026-03-31" and snap["month"] == "2026-03"
    assert set(snap["keys"]) == {"key-1", "key-2"}
    day = snap["keys"]["key-1"]["day"]
    assert day["usd"] == pytest.approx(0.003) and day["losers_usd"] == pytest.approx(0.001)
    assert day["losers_share"] == pytest.approx(0.3333)
    deps = snap["deployments"]
    assert deps["a"]["month"]["usd"] == pytest.approx(0.004)
    assert deps["a"]["month"]["losers_share"] == 0.0
    assert deps["b"]["day"]["losers_share"] == 1.0
    assert deps["idle"]["day"] == {"usd": 0.0, "losers_usd": 0.0, "losers_share": 0.0}


def test_ledger_starts_a_new_day_and_a_new_month() -> None:
    clock = Clock(T0)  # 2026-03-31 23:59:58
    ledger = CostLedger(clock=clock)
    ledger.record(race_with_a_loser("r1"))
    clock.now = T0 + 5  # 2026-04-01: a new day and a new month
    ledger.record(race_with_a_loser("r2"))
    assert ledger.spent("key", "key-1", "day")[0] == pytest.approx(0.003)
    assert ledger.spent("key", "key-1", "month")[0] == pytest.approx(0.003)
    clock.now = T0 + 86_400  # 2026-04-01 23:59:58, same month
    ledger.record(race_with_a_loser("r3"))
    clock.now = T0 + 86_405  # 2026-04-02
    assert ledger.spent("key", "key-1", "day") == (0.0, 0.0)
    usd, losers = ledger.spent("key", "key-1", "month")
    assert usd == pytest.approx(0.006) and losers == pytest.approx(0.002)


def test_console_sinks_share_one_clock() -> None:
    clock = Clock(T0)
    console = ConsoleSinks(clock)
    for sink in console.sinks:
        sink.record(race_with_a_loser("r1"))
    assert console.recent.latest()[0]["at"] == pytest.approx(T0)
    assert console.live.snapshot(1)["totals"]["requests"] == 1
    assert console.ledger.snapshot()["keys"]["key-1"]["day"]["usd"] == pytest.approx(0.003)
