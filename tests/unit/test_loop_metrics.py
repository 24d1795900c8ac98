"""The loop's lock-free metrics export exactly what prometheus_client's own would."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway.loop_metrics import LoopCounter, LoopGauge, LoopHistogram
from gateway.metrics import TTFT_BUCKETS, GatewayMetrics

LABELS = st.sampled_from(["a", "b", "route-1", 'q"uote', "back\\slash", "new\nline"])
AMOUNTS = st.floats(min_value=0, max_value=1e6, allow_nan=False) | st.integers(0, 100)
VALUES = st.floats(min_value=-1.0, max_value=100.0, allow_nan=False) | st.sampled_from(
    [*TTFT_BUCKETS, 0.0, math.inf, -math.inf, math.nan]
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("inc"), LABELS, LABELS, AMOUNTS),
        st.tuples(st.just("observe"), LABELS, st.just(""), VALUES),
        st.tuples(st.just("plain"), st.just(""), st.just(""), VALUES),
        st.tuples(st.just("gauge"), st.just(""), st.just(""), st.integers(-3, 3)),
    ),
    max_size=60,
)


def _without_created(text: str) -> tuple[str, list[str]]:
    """The exposition with the `_created` samples' values (creation times) taken out."""
    created = re.findall(r"^(\S+_created(?:\{[^}]*\})?) \S+$", text, re.M)
    return re.sub(r"^(\S+_created(?:\{[^}]*\})?) \S+$", r"\1 T", text, flags=re.M), created


def _pair() -> tuple[CollectorRegistry, tuple[object, ...], CollectorRegistry, tuple[object, ...]]:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = (
        Counter("c", "a counter", ["route", "outcome"], registry=theirs),
        Histogram("h", "a histogram", ["route"], buckets=TTFT_BUCKETS, registry=theirs),
        Histogram("p", "a plain histogram", buckets=(0.001, 0.5, 1.0), registry=theirs),
        Gauge("g", "a gauge", registry=theirs),
    )
    loop = (
        LoopCounter("c", "a counter", ["route", "outcome"], ours),
        LoopHistogram("h", "a histogram", ["route"], ours, buckets=TTFT_BUCKETS),
        LoopHistogram("p", "a plain histogram", (), ours, buckets=(0.001, 0.5, 1.0)),
        LoopGauge("g", "a gauge", ours),
    )
    return theirs, reference, ours, loop


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_the_same_updates_render_the_same_exposition(
    ops: list[tuple[str, str, str, float]],
) -> None:
    theirs, reference, ours, loop = _pair()
    for kind, first, second, amount in ops:
        for counter, histogram, plain, gauge in (reference, loop):
            if kind == "inc":
                counter.labels(first, second).inc(amount)  # type: ignore[attr-defined]
            elif kind == "observe":
                histogram.labels(first).observe(amount)  # type: ignore[attr-defined]
            elif kind == "plain":
                plain.observe(amount)  # type: ignore[attr-defined]
            else:
                (gauge.inc if amount >= 0 else gauge.dec)(abs(amount))  # type: ignore[attr-defined]
    expected, expected_created = _without_created(generate_latest(theirs).decode())
    got, got_created = _without_created(generate_latest(ours).decode())
    assert got == expected
    assert got_created == expected_created


def test_a_counter_refuses_a_negative_amount_and_a_wrong_label_count() -> None:
    counter = LoopCounter("c", "a counter", ["route"], CollectorRegistry())
    with pytest.raises(ValueError):
        counter.labels("a").inc(-1)
    with pytest.raises(ValueError):
        counter.labels("a", "b")
    with pytest.raises(ValueError):
        LoopHistogram("h", "x", (), CollectorRegistry(), buckets=(1.0, 0.5))


def test_the_gateways_metrics_render_with_the_loop_families() -> None:
    """A name registered twice would raise here; the families render with their help."""
    metrics = GatewayMetrics()
    metrics.requests.labels("r", "completed").inc()
    metrics.overhead.observe(0.0002)
    metrics.in_flight.inc()
    text = metrics.render().decode()
    assert 'gateway_requests_total{outcome="completed",route="r"} 1.0' in text
    assert 'gateway_overhead_seconds_bucket{le="0.00025"} 1.0' in text
    assert "# TYPE gateway_overhead_seconds histogram" in text
    assert "gateway_in_flight_requests 1.0" in text
