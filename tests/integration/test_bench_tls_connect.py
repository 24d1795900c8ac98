"""bench.tls_connect runs end to end: every measured request opens a new connection (the
loser's reset is applied), TLS where asked, and the resumed row does resume."""

from __future__ import annotations

import shutil

import pytest

from bench import tls_connect


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_each_request_opens_a_new_connection_and_resumption_resumes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert tls_connect.main(["--requests", "5"]) == 0
    rows = {
        cells[0]: cells[1:]
        for line in capsys.readouterr().out.splitlines()
        if (cells := [c.strip() for c in line.strip("|").split("|")])[0].startswith(("TCP", "TLS"))
    }
    assert set(rows) == {"TCP", "TLS", "TLS, session resumed"}
    assert [rows[name][1] for name in rows] == ["5", "5", "5"]  # a new connection each
    assert rows["TCP"][2] == "0" and rows["TLS"][2] == "0"
    assert rows["TLS, session resumed"][2] == "5"
