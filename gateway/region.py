"""The client's region, from the configured region header, else a country header mapped
to a region, else the default region.

A region header that names no configured region is never silently ignored: the request
records it (`RegionResolver.of` says so) and, with `latency.unknown_region: refuse`, it is
a 400 naming the header and the regions that exist.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config.model import LatencyConfig
from gateway.rejection import Rejected
from gateway.value_class import value_class

MAX_SHOWN_CHARS = 32  # of an unknown header value, in a log line or an error message


@value_class
class Region:
    name: str
    unknown: str | None = None  # the header's value when it named no configured region


class RegionResolver:
    def __init__(self, latency: LatencyConfig) -> None:
        self.header = latency.region_header
        self.regions = frozenset(latency.regions)
        self.default = latency.default_region
        self.country_header = latency.country_header
        self.country_regions = dict(latency.country_regions)
        self.refuse_unknown = latency.unknown_region == "refuse"
        self._known = {name: Region(name) for name in (*self.regions, self.default)}

    def of(self, headers: Mapping[str, str]) -> Region:
        raw = headers.get(self.header)
        unknown: str | None = None
        if raw:
            value = raw.strip().lower()
            known = self._known.get(value)
            if known is not None:
                return known
            unknown = value[:MAX_SHOWN_CHARS]
            if self.refuse_unknown:
                raise Rejected(
                    400,
                    f"unknown region {unknown!r} in the {self.header} header: expected one of "
                    + ", ".join(sorted(self.regions)),
                    "invalid_request_error",
                    "unknown_region",
                    self.header,
                )
        if self.country_header:
            country = headers.get(self.country_header, "").strip().upper()
            mapped = self.country_regions.get(country)
            if mapped:
                return Region(mapped, unknown) if unknown else self._known[mapped]
        return Region(self.default, unknown) if unknown else self._known[self.default]
