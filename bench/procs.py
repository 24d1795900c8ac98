"""Child processes for benchmarks: start, wait until ready, read CPU time, always stop.

Used by bench.overhead to run the simulator and the gateway as separate
processes (`python -m gateway sim|serve --config F`), so the gateway's CPU
can be read from /proc and the load generator does not share its event loop.
The /proc readers (CPU, RSS, sockets, fds, listen overflows) are Linux-only.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


REPO = Path(__file__).resolve().parent.parent  # where `python -m gateway` runs from


def free_port() -> int:
    """A port that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def split_cpus() -> tuple[set[int], set[int]]:
    """This process's CPUs as (one for the proxies under test, the rest for the load):
    pinned apart, the proxy's own queueing is measured, not its fight with the client and
    the simulator for a core. Needs two CPUs at least."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs two CPUs at least")
    return {cpus[-1]}, set(cpus[:-1])


def pin(pid: int, cpus: set[int]) -> None:
    """Run every thread of `pid` on `cpus` only (threads it starts later inherit that)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:  # the thread ended meanwhile
            pass


CALLGRIND_ENV = "BENCH_UNDER_CALLGRIND"  # set by a harness that runs a child under callgrind


def callgrind_instrument(on: bool) -> None:
    """Under callgrind started with `--instr-atstart=no` (and CALLGRIND_ENV set), count
    only what runs between on and off: the measured requests, not start-up."""
    if os.environ.get(CALLGRIND_ENV):
        flag = "on" if on else "off"
        subprocess.run(
            ["callgrind_control", "-i", flag, str(os.getpid())], check=True, capture_output=True
        )


def run_counted(command: list[str], callgrind: bool) -> tuple[int, str]:
    """Run a benchmark's child (`python -m bench.X ...` from the repository, hash seed 0),
    under callgrind when asked, counting only what it instruments (`callgrind_instrument`):
    (instructions, or 0 without callgrind; the child's stdout)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if callgrind:
        env[CALLGRIND_ENV] = "1"
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        command = [*valgrind, "--callgrind-out-file=/dev/null", *command]
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    if not callgrind:
        return 0, out.stdout
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(out.stderr[-2000:])
    return int(found.group(1)), out.stdout


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (Linux), in seconds."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()  # the name may contain spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) / _CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine have used (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def proc_status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/status we use: VmRSS, VmHWM."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def listen_overflows() -> int:
    """TcpExt ListenOverflows (system-wide): SYNs dropped on a full accept queue."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            row = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(row.get("ListenOverflows", 0))
    return 0


def rss_kib(pid: int) -> int:
    return proc_status(pid)["VmRSS"]


def socket_count(pid: int) -> int:
    try:
        return sum(
            1
            for fd in os.listdir(f"/proc/{pid}/fd")
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        )
    except OSError:
        return -1


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


class Child:
    """A child process with its output in a log file; stopped by `stop()` or on exit."""

    def __init__(
        self,
        name: str,
        args: list[str],
        log_path: Path,
        cwd: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env={**os.environ, **env} if env else None,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_http(self, url: str, timeout_s: float = 20.0) -> None:
        """Poll `url` until it answers 200; fail early if the process exits."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1.0) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready at {url} after {timeout_s:g}s")
            time.sleep(0.1)

    def wait_port(self, port: int, timeout_s: float = 20.0) -> None:
        """Poll until 127.0.0.1:`port` accepts a connection; fail early if the process exits."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not listening on {port} after {timeout_s:g}s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


class Children:
    """Context manager that stops every child it started, in reverse order, whatever happens."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(
        self,
        name: str,
        args: list[str],
        log_path: Path,
        cwd: Path,
        env: dict[str, str] | None = None,
    ) -> Child:
        child = Child(name, args, log_path, cwd, env)
        self.children.append(child)
        return child

    def gateway(self, name: str, command: str, config: Path, log_path: Path) -> Child:
        """`python -m gateway <command> --config <config>` (`sim` or `serve`), run from the
        repository's root."""
        return self.start(name, ["-m", "gateway", command, "--config", str(config)], log_path, REPO)

    def __enter__(self) -> Children:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for child in reversed(self.children):
            try:
                child.stop()
            except Exception as err:  # keep stopping the others
                print(f"could not stop {child.name}: {err}", file=sys.stderr)
        self.children.clear()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def make_certificate(where: Path) -> tuple[Path, Path]:
    """A throwaway self-signed RSA-2048 certificate for localhost and 127.0.0.1, made with
    the `openssl` command: (key, certificate) PEM files in `where`."""
    if shutil.which("openssl") is None:
        raise SystemExit("the openssl command is needed to make a test certificate")
    key, cert = where / "key.pem", where / "cert.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
    subprocess.run(
        [*command, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return key, cert
