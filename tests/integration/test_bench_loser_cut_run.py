"""bench.loser_cut runs end to end on a small load: every race's loser is cut and its
drop is clocked by `bench.cut_clock` (the gateway's cut time on the simulator's clock)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import loser_cut


def test_a_small_run_clocks_every_cut(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    argv = ["--concurrency", "4", "--requests", "8", "--rounds", "1", "--json", str(out)]
    assert loser_cut.main(argv) == 0
    losers = json.loads(out.read_text())["losers"]
    assert losers["races"] == 8 and losers["losers_read_to_end"] == 0
    assert losers["cut_clocked"] == 8  # each loser's drop was logged with its request's tag
    assert losers["before_cut_max"] is not None
