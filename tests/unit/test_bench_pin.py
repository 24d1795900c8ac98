"""bench.procs.pin: every thread of a process, those started before and after, runs on the
CPUs it was given (what bench.overhead --pin relies on)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.procs import pin, split_cpus

CHILD = """
import sys, threading, time
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()  # the test pins this process now
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()
"""


def _affinities(pid: int) -> list[set[int]]:
    return [os.sched_getaffinity(int(t.name)) for t in Path(f"/proc/{pid}/task").iterdir()]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_pin_moves_every_thread_and_later_threads_follow() -> None:
    proxy, load = split_cpus()
    assert proxy and load and not proxy & load
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        assert len(_affinities(child.pid)) == 2
        pin(child.pid, proxy)
        assert _affinities(child.pid) == [proxy, proxy]
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "ready"
        assert _affinities(child.pid) == [proxy, proxy, proxy]
    finally:
        child.kill()
        child.wait()
