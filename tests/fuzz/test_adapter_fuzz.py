"""Every adapter's parse_error and parse_response with arbitrary statuses, headers and bodies.

Contract: parse_error returns one well-formed UpstreamError and parse_response a list of
defined events; neither raises, and no error message contains the provider's API key.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.invariants import API_KEY, KINDS, provider, run_and_check
from tests.fuzz.strategies import ERROR_BODIES, dumps, json_values, mutated, upstream_json

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

statuses = st.one_of(
    st.sampled_from([400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 529]),
    st.integers(min_value=100, max_value=599),
    st.integers(min_value=-(2**31), max_value=2**31),
)
header_names = st.sampled_from(
    ["retry-after", "Retry-After", "retry-after-ms", "date", "x-should-retry", "X-Should-Retry"]
) | st.text(max_size=8)
header_values = st.one_of(
    st.sampled_from(
        [
            "1",
            "0.5",
            "-1",
            "nan",
            "inf",
            "1e999",
            "true",
            "false",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 07:28:00",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            API_KEY,
        ]
    ),
    st.text(max_size=30),
)
headers = st.dictionaries(header_names, header_values, max_size=4)
error_bodies = st.one_of(
    st.sampled_from(ERROR_BODIES).flatmap(mutated).map(dumps),
    json_values.map(dumps),
    st.binary(max_size=200),
    st.sampled_from([b"", b"<html>502 Bad Gateway</html>", API_KEY.encode()]),
)


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(status=statuses, headers=headers, body=error_bodies)
def test_parse_error(kind: str, status: int, headers: dict[str, str], body: bytes) -> None:
    run_and_check(kind, "error", lambda: provider(kind).parse_error(status, headers, body))


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_parse_response(kind: str, data: st.DataObject) -> None:
    body = data.draw(
        st.one_of(
            upstream_json(kind, "response").map(dumps),
            st.binary(max_size=200),
            st.just(b""),
        ),
        label="body",
    )
    run_and_check(kind, "response", lambda: provider(kind).parse_response(body))


@pytest.mark.parametrize("kind", KINDS)
def test_parse_error_without_key_and_with_short_key(kind: str) -> None:
    """A provider without a key (or with a key too short to redact safely) still parses."""
    for key in (None, "", "abc"):
        adapter = provider(kind, api_key=key)
        error = adapter.parse_error(401, {}, b'{"error": {"message": "abc"}}')
        assert error.status == 401 and isinstance(error.message, str)
