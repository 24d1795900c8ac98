"""bench.race_cost runs end to end (without callgrind): in route race2 every request cuts
its loser (`b`), in route single none; the table it prints carries both."""

from __future__ import annotations

import pytest

from bench import race_cost


def test_every_race_cuts_its_loser_and_a_single_attempt_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert race_cost.main(["--requests", "5", "--no-callgrind"]) == 0
    rows = {
        cells[0]: cells[1:]
        for line in capsys.readouterr().out.splitlines()
        if (cells := [c.strip() for c in line.strip("|").split("|")])[0] in race_cost.ROUTES
    }
    assert rows["single"][-1] == "0.00"
    assert rows["race2"][-1] == "1.00"
