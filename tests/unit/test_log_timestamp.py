"""The access line's timestamp (`logs.utc_timestamp`) is the one structlog's ISO UTC
stamper writes (`datetime.isoformat`, zero fraction left out, `Z`), to the microsecond."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from gateway.logs import utc_timestamp


def _datetime_spelling(now: float) -> str:
    return dt.datetime.fromtimestamp(now, tz=dt.UTC).isoformat().replace("+00:00", "Z")


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_any_time_is_spelled_as_datetime_spells_it(now: float) -> None:
    assert utc_timestamp(now) == _datetime_spelling(now)


@given(st.integers(0, 4_102_444_799), st.integers(0, 999_999))
def test_whole_microseconds_and_second_boundaries(second: int, micro: int) -> None:
    for now in (second + micro / 1_000_000, float(second), second + 0.9999996):
        assert utc_timestamp(now) == _datetime_spelling(now)


def test_examples() -> None:
    assert utc_timestamp(1796563486.0) == "2026-12-06T13:24:46Z"
    assert utc_timestamp(1796563486.5) == "2026-12-06T13:24:46.500000Z"
    assert utc_timestamp(1796563487.0000001) == "2026-12-06T13:24:47Z"
