"""Pure parts of gateway.loadtest: percentiles, summaries, SSE timing from scripted bytes."""

from __future__ import annotations

import argparse
import itertools
import math
import random

import orjson
import pytest

from gateway.loadtest.cli import header_arg
from gateway.loadtest.client import LoadSpec
from gateway.loadtest.stats import (
    RequestSample,
    distribution,
    percentile,
    run_elapsed,
    summarize,
)
from gateway.loadtest.timing import StreamTimer, is_token_chunk, output_size

# --- percentiles ---------------------------------------------------------------------


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 50) is None


def test_percentile_of_one_value_is_that_value() -> None:
    assert [percentile([7.0], p) for p in (0, 50, 99.9, 100)] == [7.0, 7.0, 7.0, 7.0]


def test_percentile_interpolates_between_closest_ranks() -> None:
    data = [10.0, 20.0, 30.0, 40.0]
    assert percentile(data, 0) == 10.0
    assert percentile(data, 100) == 40.0
    assert percentile(data, 50) == pytest.approx(25.0)
    assert percentile(data, 90) == pytest.approx(37.0)  # rank 2.7


def test_percentile_matches_numpy_linear() -> None:
    np = pytest.importorskip("numpy")
    rng = random.Random(3)
    for n in (1, 2, 5, 100, 1001):
        data = sorted(rng.lognormvariate(6, 1) for _ in range(n))
        for p in (0, 1, 50, 90, 99, 99.9, 100):
            assert percentile(data, p) == pytest.approx(float(np.percentile(data, p)))


@pytest.mark.parametrize("p", [-1, 100.5, math.nan])
def test_percentile_out_of_range_is_rejected(p: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], p)


def test_distribution_of_1_to_1000() -> None:
    d = distribution(float(i) for i in range(1, 1001))
    assert d.count == 1000 and d.min == 1.0 and d.max == 1000.0
    assert d.mean == pytest.approx(500.5)
    assert d.p50 == pytest.approx(500.5)
    assert d.p90 == pytest.approx(900.1)
    assert d.p99 == pytest.approx(990.01)
    assert d.p999 == pytest.approx(999.001)
    assert d.to_dict()["p99.9"] == d.p999


def test_distribution_of_nothing() -> None:
    d = distribution([])
    assert d.count == 0 and d.p50 is None and d.mean is None


# --- summary -------------------------------------------------------------------------


def ok_sample(i: int, start: float, ttft: float, gaps: list[float]) -> RequestSample:
    return RequestSample(
        index=i,
        start_s=start,
        status=200,
        ttft_s=ttft,
        total_s=ttft + sum(gaps),
        itl_s=gaps,
        tokens=len(gaps) + 1,
        events=len(gaps) + 2,
    )


def test_summary_from_synthetic_samples() -> None:
    samples = [
        ok_sample(i, start=i * 0.1, ttft=0.1 + i * 0.01, gaps=[0.005] * 9) for i in range(10)
    ]
    samples.append(RequestSample(index=10, start_s=0.5, status=503, error="http_503", total_s=0.01))
    samples.append(RequestSample(index=11, start_s=0.6, error="timeout", total_s=1.0))
    samples.append(
        RequestSample(
            index=12, start_s=0.7, status=200, error="stream_error", total_s=0.2, tokens=3
        )
    )
    elapsed = run_elapsed(samples)
    # first start 0.0; the last to end is the timeout (0.6 + 1.0), failed requests included
    assert elapsed == pytest.approx(1.6)
    summary = summarize(samples, elapsed)
    assert summary.requests == 13 and summary.ok == 10
    assert summary.errors == {"http_503": 1, "stream_error": 1, "timeout": 1}
    assert summary.error_count == 3
    assert summary.tokens == 10 * 10 + 3  # failed requests' chunks still arrived
    assert summary.requests_per_s == pytest.approx(10 / elapsed)
    assert summary.chunks_per_s == pytest.approx(103 / elapsed)
    assert summary.ttft_ms.count == 10  # only successful requests
    assert summary.ttft_ms.p50 == pytest.approx(145.0)
    assert summary.ttft_ms.max == pytest.approx(190.0)
    assert summary.itl_ms.count == 90 and summary.itl_ms.p99 == pytest.approx(5.0)
    assert summary.total_ms.min == pytest.approx(145.0)
    as_json = orjson.loads(orjson.dumps(summary.to_dict()))
    assert as_json["errors"]["timeout"] == 1
    assert as_json["ttft_ms"]["p99.9"] == pytest.approx(summary.ttft_ms.p999)


def test_summary_of_no_samples() -> None:
    summary = summarize([], 0.0)
    assert summary.requests == 0 and summary.requests_per_s == 0.0
    assert summary.ttft_ms.count == 0 and run_elapsed([]) == 0.0


# --- SSE timing ----------------------------------------------------------------------


def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


ROLE = chunk({"role": "assistant", "content": ""})
EMPTY = chunk({"content": ""})
FINISH = chunk({}, "stop")
USAGE = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n'
DONE = b"data: [DONE]\n\n"


def play(script: list[tuple[float, bytes]], start: float = 0.0) -> StreamTimer:
    timer = StreamTimer(start)
    for t, data in script:
        timer.feed(data, t)
    timer.close()
    return timer


def test_ttft_is_the_first_chunk_with_content_not_the_role_chunk() -> None:
    timer = play(
        [
            (0.010, ROLE),
            (0.020, b": keep-alive\n\n"),
            (0.030, EMPTY),
            (0.100, chunk({"content": "Hel"})),
            (0.105, chunk({"content": "lo"})),
            (0.125, chunk({"content": "!"}) + FINISH + USAGE + DONE),
        ]
    )
    assert timer.error is None and timer.done
    assert timer.ttft == pytest.approx(0.100)
    assert timer.gaps == pytest.approx([0.005, 0.020])
    assert timer.tokens == 3
    assert timer.events == 7  # role, empty, 3 text, finish, usage


def test_reasoning_and_tool_calls_are_tokens() -> None:
    assert is_token_chunk(orjson.loads(chunk({"reasoning_content": "hmm"})[6:]))
    assert is_token_chunk(orjson.loads(chunk({"reasoning": "hmm"})[6:]))
    tool = {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}
    assert is_token_chunk(orjson.loads(chunk(tool)[6:]))
    assert not is_token_chunk(orjson.loads(ROLE[6:]))
    assert not is_token_chunk(orjson.loads(FINISH[6:]))
    assert not is_token_chunk(orjson.loads(USAGE[6:]))
    assert not is_token_chunk({"choices": [{"delta": {"tool_calls": []}}]})
    assert not is_token_chunk([1, 2])


def test_times_are_from_the_read_that_completed_the_chunk_byte_by_byte() -> None:
    first = chunk({"content": "a"})
    second = chunk({"content": "b"})
    body = ROLE + first + second + DONE
    # one byte per read at t = 1 ms per byte: a chunk counts when its blank line arrives
    timer = play([(i / 1000, body[i : i + 1]) for i in range(len(body))])
    end_first = len(ROLE) + len(first) - 1
    assert timer.ttft == pytest.approx(end_first / 1000)
    assert timer.gaps == pytest.approx([len(second) / 1000])
    assert timer.done and timer.error is None


@pytest.mark.parametrize("cuts", [(1,), (7, 100), (3, 50, 51, 52, 200)])
def test_any_split_gives_the_same_counts(cuts: tuple[int, ...]) -> None:
    body = ROLE + b"".join(chunk({"content": str(i)}) for i in range(5)) + FINISH + DONE
    points = sorted({0, len(body), *(c % len(body) for c in cuts)})
    pieces = [body[a:b] for a, b in itertools.pairwise(points)]
    timer = play([(float(i), piece) for i, piece in enumerate(pieces)])
    assert timer.tokens == 5 and timer.done and timer.error is None
    assert len(timer.gaps) == 4
    assert all(g >= 0 for g in timer.gaps)


def test_chunks_in_one_read_have_zero_gaps() -> None:
    burst = b"".join(chunk({"content": c}) for c in "abc")
    timer = play([(0.2, ROLE + burst + DONE)], start=0.05)
    assert timer.ttft == pytest.approx(0.15)
    assert timer.gaps == [0.0, 0.0]


def test_crlf_line_endings() -> None:
    body = (ROLE + chunk({"content": "x"}) + DONE).replace(b"\n", b"\r\n")
    timer = play([(0.1, body[:10]), (0.2, body[10:])])
    assert timer.tokens == 1 and timer.done and timer.error is None


def test_in_stream_error_chunk_is_a_stream_error() -> None:
    err = b'data: {"error":{"message":"upstream died","type":"upstream_error"}}\n\n'
    timer = play([(0.1, ROLE + chunk({"content": "x"})), (0.2, err + DONE)])
    assert timer.error == "stream_error"
    assert timer.error_detail is not None and "upstream died" in timer.error_detail
    assert timer.tokens == 1


def test_stream_without_done_is_a_stream_error() -> None:
    timer = play([(0.1, ROLE + chunk({"content": "x"}))])
    assert timer.error == "stream_error" and timer.tokens == 1
    assert timer.error_detail == "stream ended without data: [DONE]"


def test_malformed_json_is_a_stream_error() -> None:
    timer = play([(0.1, b"data: {not json\n\n" + DONE)])
    assert timer.error == "stream_error"


def test_oversized_line_is_a_stream_error_not_an_exception() -> None:
    timer = StreamTimer(0.0, max_line_bytes=64)
    timer.feed(b"data: " + b"x" * 100, 0.1)
    timer.close()
    assert timer.error == "stream_error"


def test_no_token_at_all_has_no_ttft() -> None:
    timer = play([(0.1, ROLE + FINISH + DONE)])
    assert timer.ttft is None and timer.tokens == 0 and timer.error is None


# --- spec validation -------------------------------------------------------------------


def test_spec_needs_a_bound_and_sane_numbers() -> None:
    with pytest.raises(ValueError, match="requests, a duration"):
        LoadSpec(base_url="http://x/v1", model="m")
    with pytest.raises(ValueError):
        LoadSpec(base_url="http://x/v1", model="m", requests=0)
    with pytest.raises(ValueError):
        LoadSpec(base_url="http://x/v1", model="m", requests=1, rate=0)
    spec = LoadSpec(base_url="http://x/v1/", model="m", requests=3, max_tokens=5)
    assert spec.url == "http://x/v1/chat/completions"
    assert spec.mode == "closed" and spec.slots == 10
    body = orjson.loads(spec.body())
    assert body["stream"] is True and body["max_tokens"] == 5 and body["model"] == "m"
    open_spec = LoadSpec(base_url="http://x/v1", model="m", rate=5, duration_s=1)
    assert open_spec.mode == "open" and open_spec.slots > 1000


def test_spec_json_hides_header_values() -> None:
    spec = LoadSpec(
        base_url="http://x/v1", model="m", requests=1, headers=(("x-api-key", "secret-value"),)
    )
    assert "secret-value" not in orjson.dumps(spec.to_dict()).decode()


def test_header_argument_splits_at_the_first_colon_only() -> None:
    # a URL value keeps its own colons (bench.overhead --compare-header for Portkey)
    assert header_arg(" x-portkey-custom-host :  http://127.0.0.1:18300/v1 ") == (
        "x-portkey-custom-host",
        "http://127.0.0.1:18300/v1",
    )
    for bad in ("no-colon", ": value"):
        with pytest.raises(argparse.ArgumentTypeError):
            header_arg(bad)


def test_output_size_counts_characters_of_every_kind_of_output() -> None:
    tool = {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}]}
    assert output_size(orjson.loads(chunk({"content": "Hello"})[6:])) == 5
    assert output_size(orjson.loads(chunk({"reasoning_content": "abc"})[6:])) == 3
    assert output_size(orjson.loads(chunk(tool)[6:])) == 3
    only_id = {"tool_calls": [{"index": 0, "id": "c1"}]}
    assert output_size(orjson.loads(chunk(only_id)[6:])) == 1
    assert output_size(orjson.loads(ROLE[6:])) == 0


def test_chars_make_merged_and_split_streams_comparable() -> None:
    split = play([(0.1, ROLE + b"".join(chunk({"content": c}) for c in "abcd") + DONE)])
    merged = play([(0.1, ROLE + chunk({"content": "abcd"}) + DONE)])
    assert (split.tokens, merged.tokens) == (4, 1)
    assert split.chars == merged.chars == 4


def test_the_timer_reads_responses_and_messages_streams() -> None:
    from gateway.loadtest.timing import StreamTimer

    def sse(*events: dict[str, object]) -> bytes:
        import orjson

        return b"".join(
            b"event: " + str(e["type"]).encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n"
            for e in events
        )

    responses = StreamTimer(0.0, door="responses")
    responses.feed(sse({"type": "response.created"}), 0.1)
    responses.feed(sse({"type": "response.output_text.delta", "delta": "Hel"}), 0.2)
    responses.feed(sse({"type": "response.output_text.delta", "delta": "lo"}), 0.3)
    responses.feed(sse({"type": "response.completed"}), 0.4)
    responses.close()
    assert (responses.error, responses.tokens, responses.chars) == (None, 2, 5)
    assert responses.ttft == 0.2

    messages = StreamTimer(0.0, door="messages")
    delta = {"type": "content_block_delta", "index": 0}
    messages.feed(
        sse({"type": "message_start"}, {**delta, "delta": {"type": "text_delta", "text": "ab"}}),
        0.5,
    )
    messages.feed(sse({**delta, "delta": {"type": "input_json_delta", "partial_json": "{"}}), 0.6)
    messages.close()
    assert messages.tokens == 2 and messages.error == "stream_error"  # no message_stop
    assert "message_stop" in (messages.error_detail or "")

    failed = StreamTimer(0.0, door="messages")
    failed.feed(sse({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}), 1)
    assert failed.error == "stream_error" and "busy" in (failed.error_detail or "")
