"""The coalescing window without sockets: the pacer on a virtual clock, the `stream:`
config section (defaults, bad values, check-config's summary) and what a reload does
with it."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.check_config import check_config_main
from gateway.config import ConfigError, load_config, parse_config, summarize
from gateway.config.model import StreamConfig
from gateway.reload import ConfigChanges
from gateway.runtime import Gateway
from gateway.server.coalesce import Pacer, pacer
from gateway.server.live import LiveGateway
from gateway.streaming.events import Event, TextDelta

BASE: dict[str, Any] = {
    "latency": {"prewarm": {"enabled": False}},
    "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "deployments": {"a": {"provider": "p", "model": "a"}},
}


class Clock:
    """Virtual time: `sleep` moves it on and notes how long it was asked to wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Reads:
    """A batch source whose every read takes `took[i]` seconds of virtual time."""

    def __init__(self, clock: Clock, took: list[float]) -> None:
        self.clock = clock
        self.took = took
        self.started: list[float] = []

    async def next_batch(self) -> list[Event] | None:
        self.started.append(self.clock.now)
        self.clock.now += self.took[len(self.started) - 1]
        return [TextDelta("x")]


async def test_each_read_waits_for_the_window_since_the_previous_batch() -> None:
    clock = Clock()
    clock.now = 10.0
    paced = Pacer(0.002, clock.time, clock.sleep)  # made at the first token's write
    source = Reads(clock, [0.0, 0.0005, 0.0, 0.0])
    for write_took in (0.0, 0.0, 0.003, 0.0):
        assert await paced.next_batch(source) == [TextDelta("x")]
        clock.now += write_took
    # read 1: a window after the first write; read 2: a window after read 1 returned;
    # read 3: a window after read 2 returned (it waited 0.5 ms for the upstream); its
    # write took longer than a window (a slow client), so read 4 starts without a sleep
    assert source.started == pytest.approx([10.002, 10.004, 10.0065, 10.0095])
    assert clock.sleeps == pytest.approx([0.002, 0.002, 0.002])


async def test_after_a_read_that_waited_a_window_the_next_goes_at_once() -> None:
    clock = Clock()
    paced = Pacer(0.002, clock.time, clock.sleep)
    source = Reads(clock, [0.005, 0.0, 0.0005, 0.0])
    for _ in range(4):
        await paced.next_batch(source)
    # read 1 waited 5 ms for the upstream (slower than the window): read 2 is not paced;
    # read 2 found its chunk waiting, so read 3 is paced again, and so is read 4
    assert source.started == pytest.approx([0.002, 0.007, 0.009, 0.0115])
    assert clock.sleeps == pytest.approx([0.002, 0.002, 0.002])


def test_off_unless_a_window_is_set() -> None:
    assert pacer(StreamConfig()) is None
    assert pacer(parse_config(BASE, env={}).stream) is None
    clock = Clock()
    on = pacer(StreamConfig(coalesce_ms=2.5), clock.time, clock.sleep)
    assert on is not None and on.window_s == pytest.approx(0.0025)


def test_the_stream_section_parses() -> None:
    config = parse_config(BASE, env={})
    assert config.stream == StreamConfig() and config.stream.coalesce_ms == 0.0
    for value, window in ((2, 2.0), (0.5, 0.5), (0, 0.0), (1000, 1000.0)):
        config = parse_config({**BASE, "stream": {"coalesce_ms": value}}, env={})
        assert config.stream.coalesce_ms == window
    assert parse_config({**BASE, "stream": {}}, env={}).stream == StreamConfig()
    assert StreamConfig().relay is True
    assert parse_config({**BASE, "stream": {"relay": False}}, env={}).stream.relay is False


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"coalesce_ms": -1}, "stream.coalesce_ms: must be a number in [0, 1000], got -1"),
        ({"coalesce_ms": 1001}, "stream.coalesce_ms: must be a number in [0, 1000], got 1001"),
        ({"coalesce_ms": "2ms"}, "stream.coalesce_ms: must be a number in [0, 1000], got '2ms'"),
        ({"coalesce_ms": True}, "stream.coalesce_ms: must be a number in [0, 1000], got true"),
        ({"coalesce_ms": float("nan")}, "stream.coalesce_ms: must be a number in [0, 1000]"),
        ({"coalesce": 2}, "stream.coalesce: unknown key"),
        ({"relay": "no"}, "stream.relay: must be"),
        ("fast", "stream: must be a mapping"),
    ],
)
def test_bad_values_name_their_path(section: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, "stream": section}, env={})
    problems = caught.value.problems
    assert any(p.startswith(problem) for p in problems), problems


def test_check_config_accepts_and_summarizes_the_window(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**BASE, "stream": {"coalesce_ms": 2}}))
    out, err = io.StringIO(), io.StringIO()
    assert check_config_main(str(good), out, err) == 0, err.getvalue()
    assert "  stream: writes coalesced per 2 ms window after the first token" in out.getvalue()
    assert "stream:" not in summarize(parse_config(BASE, env={}))  # off: nothing to say
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**BASE, "stream": {"coalesce_ms": -2}}))
    out, err = io.StringIO(), io.StringIO()
    assert check_config_main(str(bad), out, err) == 1
    assert "stream.coalesce_ms: must be a number in [0, 1000], got -2" in err.getvalue()


async def test_a_reload_applies_a_new_window(tmp_path: Path) -> None:
    old = parse_config(BASE, env={})
    new = parse_config({**BASE, "stream": {"coalesce_ms": 3}}, env={})
    changes = ConfigChanges.between(old, new)
    assert changes.sections_changed == ("stream",) and changes.restart_required == ()
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(BASE))
    live = LiveGateway(Gateway(load_config(path)), str(path))
    try:
        data = copy.deepcopy(BASE)
        data["stream"] = {"coalesce_ms": 3}
        path.write_text(yaml.safe_dump(data))
        result = await live.reload("test")
        assert result.result == "ok", result.problems
        # each request reads the window from the config it started on (request[GATEWAY])
        assert live.gateway.config.stream.coalesce_ms == 3.0
    finally:
        await live.close()
