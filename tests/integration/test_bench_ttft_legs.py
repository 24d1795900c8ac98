"""bench.ttft_legs joins every request's client times with the simulator's log, over both
upstream protocols: each leg is measured for every request, and the simulator's leg is
its model's TTFT (100 ms) or more."""

from __future__ import annotations

import pytest

from bench import ttft_legs


@pytest.mark.parametrize("upstream", ["http1", "http2"])
def test_every_request_is_split_into_its_legs(
    upstream: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--upstream", upstream, "--requests", "20", "--concurrency", "4"]
    assert ttft_legs.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{upstream}, c=4, 20 requests")
    legs = {line.split()[0]: [float(x) for x in line.split()[1:]] for line in lines[1:]}
    assert set(legs) == {"up", "sim", "down"}
    assert legs["sim"][0] >= 100.0 and all(v >= 0 for v in legs["up"] + legs["down"])
