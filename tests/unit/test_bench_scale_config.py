"""bench.scale's generated config over HTTP/2: it parses for both the gateway and the
simulator, the provider and the simulated server speak HTTP/2, a plain server answers the
readiness check, and a stream is counted as one gateway socket, not two."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.scale import Settings, write_config
from gateway.config import parse_config
from gateway.sim.config import parse_sim_config


def test_the_http2_config_parses_and_counts_one_socket_a_stream(tmp_path: Path) -> None:
    s = Settings([10_000], 4000.0, None, 100, http2=True)
    data = yaml.safe_load(write_config(tmp_path, 18001, 18000, s, ctl_port=18002).read_text())
    config = parse_config(data, env={})
    assert config.providers["sim"].http2
    sim, problems = parse_sim_config(data["sim"])
    assert sim is not None, problems
    assert sim.servers["sim"].http2 and not sim.servers["ctl"].http2
    assert sim.servers["ctl"].port == 18002
    assert s.sockets_per_stream == 1 and Settings([1], 1.0, None, 1).sockets_per_stream == 2
