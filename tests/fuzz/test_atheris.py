"""A bounded coverage-guided run of atheris_targets.py (skipped when atheris is missing).

libFuzzer exits the process, so it runs in a subprocess; a crash fails this test with the
offending input (saved under the test's tmp_path) and the traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

ROOT = Path(__file__).resolve().parents[2]
RUNS = 30_000


def test_bounded_atheris_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    module = "tests.fuzz.atheris_targets"
    subprocess.run(
        [sys.executable, "-m", module, "--seed-corpus", str(corpus)], cwd=ROOT, check=True
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            module,
            str(corpus),
            f"-runs={RUNS}",
            "-max_len=4096",
            "-seed=1",
            "-timeout=10",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert proc.returncode == 0 and not crashes, (crashes, proc.stderr[-4000:])
