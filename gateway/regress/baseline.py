"""Baselines: the last passing results per (target, prompt), and the model version per deployment.

One JSON document, stored in a file (default `regress-baseline.json`) or, when
the gateway config says `state.backend: redis`, under the Redis key
``{prefix}:regress:baseline`` so every CI runner and scheduled job shares it.

    {
      "format": "race-gateway-regress-baseline/1",
      "updated_at": "2025-01-01T00:00:00Z",
      "deployments": {"gpt-4o-mini": {"model_version": "gpt-4o-mini-2024-07-18",
                                       "seen_at": "...", "history": [...]}},
      "results": {"<target>": {"<prompt id>": {
          "deployment": ..., "model_version": ..., "checks": {"contains": true},
          "ttft_p50_ms": ..., "ttft_p95_ms": ..., "cost_usd": ...,
          "prompt_tokens": ..., "completion_tokens": ..., "output_hash": ...,
          "output_sample": ..., "runs": ..., "updated_at": ...}}}
    }

Only passing cells are written (every check passed, no run failed): a cell
gets an entry when it has none yet, and `--update-baseline` replaces the
entries of every passing cell of the run (accepting new latency, cost, output
and model version). A failing run never overwrites what last passed.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import orjson

from gateway.redislayer import RedisSettings, make_client

FORMAT = "race-gateway-regress-baseline/1"
DEFAULT_FILE = "regress-baseline.json"
HISTORY = 20  # model versions remembered per deployment


class BaselineError(Exception):
    """The baseline exists but cannot be read or written."""


@dataclass(slots=True)
class BaselineEntry:
    deployment: str | None
    model_version: str | None
    checks: dict[str, bool]
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    cost_usd: float | None
    prompt_tokens: float | None
    completion_tokens: float | None
    output_hash: str | None
    output_sample: str | None
    runs: int
    updated_at: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaselineEntry:
        def number(key: str) -> float | None:
            value = data.get(key)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
            return float(value)

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        return cls(
            deployment=text("deployment"),
            model_version=text("model_version"),
            checks={str(k): v is True for k, v in (data.get("checks") or {}).items()},
            ttft_p50_ms=number("ttft_p50_ms"),
            ttft_p95_ms=number("ttft_p95_ms"),
            cost_usd=number("cost_usd"),
            prompt_tokens=number("prompt_tokens"),
            completion_tokens=number("completion_tokens"),
            output_hash=text("output_hash"),
            output_sample=text("output_sample"),
            runs=int(data.get("runs") or 0),
            updated_at=str(data.get("updated_at") or ""),
        )


@dataclass(slots=True)
class Baseline:
    results: dict[str, dict[str, BaselineEntry]] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated_at: str | None = None

    def get(self, target: str, prompt: str) -> BaselineEntry | None:
        return self.results.get(target, {}).get(prompt)

    def put(self, target: str, prompt: str, entry: BaselineEntry) -> None:
        self.results.setdefault(target, {})[prompt] = entry

    def version_of(self, deployment: str) -> str | None:
        value = self.deployments.get(deployment, {}).get("model_version")
        return value if isinstance(value, str) else None

    def note_version(self, deployment: str, version: str, now: str) -> None:
        info = self.deployments.setdefault(deployment, {"history": []})
        history: list[dict[str, Any]] = info.setdefault("history", [])
        if info.get("model_version") != version:
            history.append({"model_version": version, "first_seen": now})
            del history[:-HISTORY]
        info["model_version"] = version
        info["seen_at"] = now

    def to_json(self) -> bytes:
        doc = {
            "format": FORMAT,
            "updated_at": self.updated_at,
            "deployments": self.deployments,
            "results": {
                target: {prompt: asdict(entry) for prompt, entry in sorted(cells.items())}
                for target, cells in sorted(self.results.items())
            },
        }
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> Baseline:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BaselineError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BaselineError(f"{where}: not a regress baseline (expected format {FORMAT})")
        try:
            results = {
                str(target): {
                    str(prompt): BaselineEntry.from_dict(entry) for prompt, entry in cells.items()
                }
                for target, cells in (doc.get("results") or {}).items()
            }
        except (AttributeError, TypeError, ValueError) as exc:
            raise BaselineError(f"{where}: malformed results ({exc})") from None
        deployments = doc.get("deployments") or {}
        if not isinstance(deployments, dict):
            raise BaselineError(f"{where}: malformed deployments")
        return cls(results, deployments, doc.get("updated_at"))


class BaselineStore(Protocol):
    location: str

    async def load(self) -> Baseline | None: ...

    async def save(self, baseline: Baseline) -> None: ...


class FileBaselineStore:
    """A JSON file, replaced atomically (write a temporary file, then rename)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.location = str(self.path)

    async def load(self) -> Baseline | None:
        return await asyncio.to_thread(self._load)

    def _load(self) -> Baseline | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BaselineError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        return Baseline.from_json(raw, str(self.path))

    async def save(self, baseline: Baseline) -> None:
        await asyncio.to_thread(self._save, baseline.to_json())

    def _save(self, data: bytes) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".regress-", dir=directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise BaselineError(f"{self.path}: cannot write: {exc.strerror or exc}") from None


class RedisBaselineStore:
    """One string key, ``{prefix}:regress:baseline``, holding the JSON document."""

    def __init__(
        self,
        url: str,
        prefix: str = "rg",
        cluster: bool = False,
        settings: RedisSettings | None = None,
    ) -> None:
        self.settings = replace(
            settings or RedisSettings.from_url(url, cluster=cluster),
            connect_timeout_s=2.0,
            socket_timeout_s=5.0,
        )
        self.key = f"{prefix}:regress:baseline"
        self.location = f"redis key {self.key}"

    def _client(self) -> Any:
        return make_client(self.settings)  # the gateway's topology, credentials and TLS

    async def load(self) -> Baseline | None:
        client = self._client()
        try:
            raw = await client.get(self.key)
        except Exception as exc:
            raise BaselineError(f"{self.location}: Redis unavailable: {_describe(exc)}") from None
        finally:
            await client.aclose()
        return None if raw is None else Baseline.from_json(raw, self.location)

    async def save(self, baseline: Baseline) -> None:
        client = self._client()
        try:
            await client.set(self.key, baseline.to_json())
        except Exception as exc:
            raise BaselineError(f"{self.location}: Redis unavailable: {_describe(exc)}") from None
        finally:
            await client.aclose()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
