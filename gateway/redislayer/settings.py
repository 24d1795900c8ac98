"""Where Redis is and how to reach it: one `RedisSettings` for single node, Sentinel and Cluster.

`state.url` picks the topology with its scheme, `state.cluster` or the Sentinel fields:

- ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS, ``unix:///path``):
  one node;
- ``redis+sentinel://[user:password@]host:port[,host:port...]/master[/db]`` (or
  ``rediss+sentinel://``), or `sentinels` + `sentinel_master` beside a plain URL: the
  master that the sentinels name, followed across failovers;
- ``cluster: true``: the URL names one node of a Redis Cluster (any one; the client
  discovers the others and follows MOVED/ASK and failovers).

ACL `username`/`password` from the config win over the URL's. The password is only ever
handed to the client: `redacted` is what logs, errors and summaries may show.
"""

from __future__ import annotations

from dataclasses import field
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from gateway.config.model import StateConfig
from gateway.value_class import value_class

Topology = Literal["single", "sentinel", "cluster"]
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


@value_class
class RedisSettings:
    url: str  # for `single` and `cluster`: a redis:// or rediss:// URL (credentials stripped)
    topology: Topology = "single"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_ca_file: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str | None = None
    db: int = 0
    request_timeout_s: float = 0.005  # the request path's budget per Redis call
    probe_interval_s: float = 0.5
    hung_after_s: float = 0.5  # a request-path batch unanswered this long: Redis is hung
    connect_timeout_s: float = 0.5
    socket_timeout_s: float = 1.0

    @property
    def redacted(self) -> str:
        """Where Redis is, without credentials (safe for logs and errors)."""
        if self.topology == "sentinel":
            nodes = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"sentinel {nodes} master {self.sentinel_master}"
        return f"{self.topology} {redact_url(self.url)}"

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False) -> RedisSettings:
        return cls.from_config(StateConfig(backend="redis", url=url, cluster=cluster))

    @classmethod
    def from_config(cls, state: StateConfig) -> RedisSettings:
        parts = urlsplit(state.url)
        username = state.username or (unquote(parts.username) if parts.username else None)
        password = (
            state.password.reveal()
            if state.password is not None
            else (unquote(parts.password) if parts.password else None)
        )
        scheme = parts.scheme
        tls = scheme in ("rediss", "rediss+sentinel")
        common = {
            "username": username,
            "password": password,
            "tls": tls,
            "tls_ca_file": state.tls_ca_file,
            "request_timeout_s": state.request_timeout_ms / 1000.0,
            "probe_interval_s": state.probe_interval_s,
        }
        if scheme in SENTINEL_SCHEMES or state.sentinels:
            if scheme in SENTINEL_SCHEMES:
                hosts = parts.netloc.rpartition("@")[2]
                nodes = tuple(_host_port(h, 26379) for h in hosts.split(",") if h)
                path = [p for p in parts.path.split("/") if p]
                master = state.sentinel_master or (path[0] if path else None)
                db = int(path[1]) if len(path) > 1 and path[1].isdigit() else 0
            else:
                nodes = tuple(_host_port(h, 26379) for h in state.sentinels)
                master = state.sentinel_master
                db = _db(parts.path)
            if not master:
                raise ValueError("Sentinel needs the master's name (sentinel_master)")
            return cls(
                url="",
                topology="sentinel",
                sentinels=nodes,
                sentinel_master=master,
                db=db,
                **common,  # type: ignore[arg-type]
            )
        bare = urlunsplit((scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))
        return cls(
            url=bare,
            topology="cluster" if state.cluster else "single",
            db=0 if state.cluster else _db(parts.path),
            **common,  # type: ignore[arg-type]
        )


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        return text.strip(), default_port
    return host.strip("[]"), int(port)


def _db(path: str) -> int:
    part = path.strip("/")
    return int(part) if part.isdigit() else 0


def redact_url(url: str) -> str:
    """`url` with any user and password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable redis url>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, "***@" + parts.netloc.rpartition("@")[2], *parts[2:]))
