"""bench.ttft_path's reading of a proxy's stamps: two stretches per request, at c=1."""

from __future__ import annotations

from bench.ttft_path import QUIET_NS, read_paths

MS = 1_000_000


def _request(t0: int, body_after: int = 100_000) -> list[tuple[str, int]]:
    """One request as a proxy stamps it: head and body in, upstream write, the role chunk,
    the upstream's silence, the first token (in two reads), the client write, then
    tokens and writes every 5 ms."""
    t = t0 + body_after
    stamps = [("in", t0), ("in", t), ("up", t + 50_000), ("tok", t + 200_000)]
    first = t + 200_000 + 100 * MS
    stamps += [("tok", first), ("tok", first + 20_000), ("out", first + 70_000)]
    for i in range(1, 4):
        stamps += [("tok", first + i * 5 * MS), ("out", first + i * 5 * MS + 30_000)]
    return stamps


def test_each_request_gives_its_two_stretches_and_steps() -> None:
    stamps = _request(0) + _request(500 * MS, body_after=80_000)
    paths = read_paths(stamps)
    # head in -> upstream write; the first token's first read (after the silence) -> out
    assert paths.request == [150.0, 130.0]
    assert paths.first_token == [70.0, 70.0]
    assert paths.steps["request in->in"] == [100.0, 80.0]
    assert paths.steps["token tok->tok"] == [20.0, 20.0]
    first_out = 100_000 + 200_000 + 100 * MS + 70_000  # from its head's arrival
    assert paths.ends == [(0, first_out), (500 * MS, 500 * MS + first_out - 20_000)]


def test_without_a_silence_the_first_token_counts_from_the_first_upstream_bytes() -> None:
    # the role chunk's read came less than QUIET_NS before the token's: no silence between
    near = [("in", 0), ("up", 10_000), ("tok", 20_000), ("tok", 20_000 + QUIET_NS // 2)]
    near += [("out", 20_000 + QUIET_NS // 2 + 5_000)]
    assert read_paths(near).first_token == [(QUIET_NS // 2 + 5_000) / 1e3]
    assert read_paths(near).request == [10.0]
