"""Counters, histograms and a gauge that the event loop updates per request, without locks.

prometheus_client's own metrics take a lock and three Python calls per increment, and a
histogram walks its buckets in Python: a request's dozen updates cost more than its
access-log line. Every update of these happens on the loop's thread, and so does every
scrape (`GatewayMetrics.render`), so a series here is plain floats. Each is a collector in
the same registry and exports what prometheus_client's Counter, Histogram and Gauge
would: the same family, sample names (`_total`, `_bucket` with `le`, `_count`, `_sum`,
`_created`), labels, label order and series order (first use first);
`PROMETHEUS_DISABLE_CREATED_SERIES` leaves the `_created` samples out as it does there.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

_CREATED = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in (
    "true",
    "1",
    "t",
)


class CounterSeries:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount


class HistogramSeries:
    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds  # ascending, +Inf last
        self.counts = [0.0] * len(bounds)  # per bucket, not cumulative
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        """Into the first bucket whose bound is at least `amount` (none for NaN, as
        prometheus_client's walk does: its sum still takes it)."""
        self.sum += amount
        if amount == amount:
            self.counts[bisect_left(self._bounds, amount)] += 1.0


S = TypeVar("S", CounterSeries, HistogramSeries)


class _Family(Collector, Generic[S]):
    """The series of one metric name, by label values."""

    kind = ""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._series: dict[tuple[str, ...], S] = {}
        if not self.labelnames:  # as prometheus_client: exported (zero) from the start
            self._series[()] = self._new()
        if registry is not None:
            registry.register(self)

    def _new(self) -> S:
        raise NotImplementedError

    def labels(self, *values: str) -> S:
        found = self._series.get(values)
        if found is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected {len(self.labelnames)} label values")
            key = tuple(str(v) for v in values)
            found = self._series.get(key)
            if found is None:
                found = self._series[key] = self._new()
        return found

    def describe(self) -> Iterator[Metric]:
        yield Metric(self.name, self.documentation, self.kind)


class LoopCounter(_Family[CounterSeries]):
    kind = "counter"

    def _new(self) -> CounterSeries:
        return CounterSeries()

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "counter")
        total, created = self.name + "_total", self.name + "_created"
        for values, series in list(self._series.items()):
            labels = dict(zip(self.labelnames, values, strict=True))
            metric.add_sample(total, labels, series.value)
            if _CREATED:
                metric.add_sample(created, labels, series.created)
        yield metric


class LoopHistogram(_Family[HistogramSeries]):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
        buckets: Sequence[float] = (),
    ) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        if not bounds or bounds[-1] != INF:
            bounds.append(INF)
        self._bounds = tuple(bounds)
        self._le = tuple(floatToGoString(b) for b in bounds)
        super().__init__(name, documentation, labelnames, registry)

    def _new(self) -> HistogramSeries:
        return HistogramSeries(self._bounds)

    def observe(self, amount: float) -> None:
        self.labels().observe(amount)

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "histogram")
        name = self.name
        for values, series in list(self._series.items()):
            labels = dict(zip(self.labelnames, values, strict=True))
            cumulative = 0.0
            for le, count in zip(self._le, series.counts, strict=True):
                cumulative += count
                metric.add_sample(name + "_bucket", {**labels, "le": le}, cumulative)
            metric.add_sample(name + "_count", labels, cumulative)
            if self._bounds[0] >= 0:
                metric.add_sample(name + "_sum", labels, series.sum)
            if _CREATED:
                metric.add_sample(name + "_created", labels, series.created)
        yield metric


class LoopGauge(Collector):
    """A gauge without labels (in-flight requests)."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.value = 0.0
        registry.register(self)

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)

    def describe(self) -> Iterator[Metric]:
        yield Metric(self.name, self.documentation, "gauge")

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "gauge")
        metric.add_sample(self.name, {}, self.value)
        yield metric
