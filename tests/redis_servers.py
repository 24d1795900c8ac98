"""Throwaway `redis-server` processes for tests and benches: a private single node (that a
test may stop, freeze with SIGSTOP and thaw), a Redis Cluster of three masters (with
optional replicas, for failover), and a Sentinel. Free ports, no persistence, a temporary
directory each; every process is stopped afterwards. Needs the `redis-server` and
`redis-cli` binaries (`REDIS_BINARIES` says whether they are there)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
REDIS_BINARIES = REDIS_SERVER is not None and REDIS_CLI is not None
MISSING_REASON = "redis-server and redis-cli are not installed: cannot start throwaway servers"


def free_port(bus: bool = False, avoid: Sequence[int] = ()) -> int:
    """A free TCP port (and port + 10000 for a cluster bus when `bus`)."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(20000, 50000)
        wanted = (port, port + 10000) if bus else (port,)
        if any(abs(p - q) in (0, 10000) for p in wanted for q in avoid):
            continue
        try:
            for p in wanted:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def cli(port: int, *command: str, password: str | None = None) -> str:
    assert REDIS_CLI is not None
    auth = ["--user", "default", "--pass", password, "--no-auth-warning"] if password else []
    out = subprocess.run(
        [REDIS_CLI, "-p", str(port), *auth, *command], capture_output=True, text=True, timeout=10
    )
    return out.stdout


def wait_for(port: int, command: Sequence[str], expect: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while expect not in cli(port, *command):
        if time.monotonic() > deadline:
            raise AssertionError(f"node {port}: {list(command)} never gave {expect!r}")
        time.sleep(0.05)


def wait_accepting(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass
class RedisNode:
    port: int
    args: list[str]
    workdir: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGCONT)  # a frozen server cannot exit
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing (a hung Redis)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


def node_args(port: int, workdir: str, *extra: str) -> list[str]:
    assert REDIS_SERVER is not None
    return [
        REDIS_SERVER,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", workdir,
        "--save", "",
        "--appendonly", "no",
        *extra,
    ]  # fmt: skip


@contextmanager
def redis_node(*extra: str, tls: bool = False) -> Iterator[RedisNode]:
    """One private redis-server (extra: more server arguments, where ``{port}`` is its
    port; `tls`: it listens with TLS only, so readiness is its port accepting)."""
    workdir = tempfile.mkdtemp(prefix="rg-redis-")
    port = free_port()
    args = node_args(port, workdir, *(a.replace("{port}", str(port)) for a in extra))
    node = RedisNode(port, args, workdir)
    node.start()
    try:
        if tls:
            wait_accepting(port)
        else:
            wait_for(port, ["ping"], "PONG")
        yield node
    finally:
        node.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class RedisClusterProcs:
    masters: list[RedisNode]
    replicas: list[RedisNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.masters[0].port}"

    @property
    def live_url(self) -> str:
        """A node that still runs (after a test stopped one)."""
        node = next(n for n in self.nodes if n.proc is not None)
        return f"redis://127.0.0.1:{node.port}"

    @property
    def nodes(self) -> list[RedisNode]:
        return [*self.masters, *self.replicas]

    def node_id(self, port: int) -> str:
        return cli(port, "cluster", "myid").strip()

    def owner_of(self, slot: int) -> RedisNode:
        """The master serving `slot` now (asks the first node that answers)."""
        live = (n for n in self.nodes if n.proc is not None)
        table = next((t for n in live if (t := cli(n.port, "cluster", "nodes").strip())), "")
        for line in table.splitlines():
            parts = line.split()
            if "master" not in parts[2] or "fail" in parts[2]:
                continue
            for spec in parts[8:]:
                lo, _, hi = spec.partition("-")
                if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                    port = int(parts[1].split(":")[1].split("@")[0])
                    return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"no master serves slot {slot}")


@contextmanager
def redis_cluster(masters: int = 3, replicas: int = 0) -> Iterator[RedisClusterProcs]:
    """A Redis Cluster of `masters` masters (and `replicas` replicas each) on free ports."""
    workdir = tempfile.mkdtemp(prefix="rg-cluster-")
    ports: list[int] = []
    for _ in range(masters * (1 + replicas)):
        ports.append(free_port(bus=True, avoid=ports))
    nodes = []
    for port in ports:
        path = os.path.join(workdir, str(port))
        os.makedirs(path)
        extra = (
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "500",  # failover within a second or two
        )  # fmt: skip
        nodes.append(RedisNode(port, node_args(port, path, *extra), path))
    cluster = RedisClusterProcs(nodes[:masters], nodes[masters:])
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            wait_for(node.port, ["ping"], "PONG")
        assert REDIS_CLI is not None
        subprocess.run(
            [
                REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas", str(replicas), "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        for node in nodes:
            wait_for(node.port, ["cluster", "info"], "cluster_state:ok")
        if replicas:  # redis-cli pairs masters and replicas itself: read who is who
            roles = {n.port: cli(n.port, "role").split("\n", 1)[0].strip() for n in nodes}
            cluster = RedisClusterProcs(
                [n for n in nodes if roles[n.port] == "master"],
                [n for n in nodes if roles[n.port] != "master"],
            )
            for node in cluster.replicas:
                wait_for(node.port, ["info", "replication"], "master_link_status:up")
        yield cluster
    finally:
        for node in nodes:
            node.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def move_slot(cluster: RedisClusterProcs, slot: int, target: RedisNode) -> None:
    """Migrate `slot` with its keys to `target` (the way redis-cli --cluster reshard does:
    IMPORTING/MIGRATING, MIGRATE key batches, then SETSLOT NODE everywhere). Clients see
    ASK while it moves and MOVED afterwards."""
    source = cluster.owner_of(slot)
    assert source.port != target.port
    source_id, target_id = cluster.node_id(source.port), cluster.node_id(target.port)
    cli(target.port, "cluster", "setslot", str(slot), "importing", source_id)
    cli(source.port, "cluster", "setslot", str(slot), "migrating", target_id)
    while True:
        keys = cli(source.port, "cluster", "getkeysinslot", str(slot), "100").split()
        if not keys:
            break
        cli(source.port, "migrate", "127.0.0.1", str(target.port), "", "0", "5000", "keys", *keys)
    # the owner-to-be first, then the old owner, then the rest (as redis-cli does): in the
    # other order the two would send a client back and forth (MOVED <-> MOVED)
    others = [n for n in cluster.masters if n.port not in (target.port, source.port)]
    for node in (target, source, *others):
        cli(node.port, "cluster", "setslot", str(slot), "node", target_id)


@contextmanager
def redis_sentinel(master_port: int, name: str = "mymaster") -> Iterator[int]:
    """A Sentinel watching the master on `master_port`; yields its port."""
    assert REDIS_SERVER is not None
    workdir = tempfile.mkdtemp(prefix="rg-sentinel-")
    port = free_port()
    conf = os.path.join(workdir, "sentinel.conf")
    with open(conf, "w") as f:
        f.write(f"port {port}\nbind 127.0.0.1\ndir {workdir}\n")
        f.write(f"sentinel monitor {name} 127.0.0.1 {master_port} 1\n")
    node = RedisNode(port, [REDIS_SERVER, conf, "--sentinel"], workdir)
    node.start()
    try:
        wait_for(port, ["sentinel", "get-master-addr-by-name", name], str(master_port))
        yield port
    finally:
        node.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def tls_files(workdir: str) -> dict[str, str]:
    """A throwaway CA and a server certificate for 127.0.0.1 (needs `openssl`)."""
    openssl = shutil.which("openssl")
    assert openssl is not None
    paths = {n: os.path.join(workdir, n) for n in ("ca.key", "ca.crt", "srv.key", "srv.csr")}
    paths["srv.crt"] = os.path.join(workdir, "srv.crt")
    ext = os.path.join(workdir, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    quiet = {"check": True, "capture_output": True, "timeout": 30}
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", paths["ca.key"], "-out", paths["ca.crt"], "-subj", "/CN=test-ca"], **quiet
    )  # fmt: skip
    subprocess.run(
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", paths["srv.key"],
         "-out", paths["srv.csr"], "-subj", "/CN=127.0.0.1"], **quiet
    )  # fmt: skip
    subprocess.run(
        [openssl, "x509", "-req", "-in", paths["srv.csr"], "-CA", paths["ca.crt"],
         "-CAkey", paths["ca.key"], "-CAcreateserial", "-days", "1",
         "-out", paths["srv.crt"], "-extfile", ext], **quiet
    )  # fmt: skip
    return paths
