"""bench.upstream_client runs end to end (without callgrind): both clients, both ways of
reading, one row each with a CPU figure."""

from __future__ import annotations

import pytest

from bench import upstream_client


def test_both_clients_are_measured_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    assert upstream_client.main(["--requests", "5", "--no-callgrind"]) == 0
    rows = {
        (cells[0], cells[1]): cells[2:]
        for line in capsys.readouterr().out.splitlines()
        if (cells := [c.strip() for c in line.strip("|").split("|")])[0] in upstream_client.CLIENTS
    }
    assert set(rows) == {(c, m) for c in upstream_client.CLIENTS for m in upstream_client.MODES}
    assert all(float(cpu) > 0 for _, cpu in rows.values())
