"""bench.loser_cut runs end to end on a small load: every race's loser is cut and its
drop is clocked by `bench.cut_clock` (the gateway's cut time on the simulator's clock)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import loser_cut


def test_a_small_run_clocks_every_cut(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    argv = ["--concurrency", "4", "--requests", "8", "--rounds", "1", "--json", str(out)]
    assert loser_cut.main(argv) == 0
    losers = json.loads(out.read_text())["losers"]
    assert losers["races"] == 8 and losers["losers_read_to_end"] == 0
    assert losers["cut_clocked"] == 8  # each loser's drop was logged with its request's tag
    assert losers["before_cut_max"] is not None


def test_over_http2_and_tls_a_loser_costs_no_new_connection(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    opened = {}
    for upstream in ("http1", "http2"):
        out = tmp_path / f"{upstream}.json"
        argv = ["--concurrency", "4", "--requests", "8", "--rounds", "1", "--tls"]
        assert loser_cut.main([*argv, "--upstream", upstream, "--json", str(out)]) == 0
        result = json.loads(out.read_text())
        assert result["failures"] == 0 and result["losers"]["losers_read_to_end"] == 0
        assert result["losers"]["cut_clocked"] == 8
        opened[upstream] = result["upstream_connections_opened_per_request"]["race2"]
    assert opened["http1"] >= 0.5  # a cut loser's connection is replaced (a TLS handshake)
    assert opened["http2"] == 0  # reset streams: the connections opened at warm-up carry on
