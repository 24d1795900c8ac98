"""The client's region, from the configured region header, else a country header mapped
to a region, else the default region."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config.model import LatencyConfig


class RegionResolver:
    def __init__(self, latency: LatencyConfig) -> None:
        self.header = latency.region_header
        self.regions = frozenset(latency.regions)
        self.default = latency.default_region
        self.country_header = latency.country_header
        self.country_regions = dict(latency.country_regions)

    def of(self, headers: Mapping[str, str]) -> str:
        value = headers.get(self.header)
        if value:
            value = value.strip().lower()
            if value in self.regions:
                return value
        if self.country_header:
            country = headers.get(self.country_header, "").strip().upper()
            mapped = self.country_regions.get(country)
            if mapped:
                return mapped
        return self.default
