"""Reading an untyped YAML tree into typed values while collecting every problem.

A `Reader` wraps one mapping at a dotted config path. Each accessor returns a
typed value (or the default) and records a problem, with its full path, when the
value is missing or wrong; `finish()` reports unknown keys. Nothing raises until
the loader has looked at the whole file, so a user sees every problem at once.

Secret values never appear in a problem: secret fields report only the kind of
a wrong value, and `Context.error()` scrubs every resolved secret from messages.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

from gateway.config.model import Secret

MISSING: Final = object()
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MIN_SCRUB_LEN = 4  # shorter secrets would mangle ordinary words when scrubbed


class ConfigError(ValueError):
    """The configuration is invalid. `problems` holds one message per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


class ConfigFileError(ConfigError):
    """The config file could not be read or is not valid YAML."""


def kind_of(value: object) -> str:
    """The YAML kind of a value, for messages that must not echo the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def show(value: object) -> str:
    """A short, YAML-flavoured rendering of a (non-secret) value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57]) + "..."
    return kind_of(value)


def suggest(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a candidate is close to `word`, else ''."""
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def join_path(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _bound(value: float) -> str:
    return f"{value:g}"


class Context:
    """Problems found so far, the environment for `env:NAME`, and resolved secrets."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self._secrets: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path or 'config'}: {message}")

    def resolve_secret(self, path: str, value: object) -> Secret | None:
        if not isinstance(value, str) or not value:
            expect = "must be a non-empty string (a literal or env:NAME)"
            self.add(path, f"{expect}, got {kind_of(value)}")
            return None
        if not value.startswith("env:"):
            self._secrets.append(value)
            return Secret(value, "literal")
        name = value[4:]
        if not _ENV_NAME.match(name):
            self.add(path, f"env:NAME needs a valid variable name, got {show(value)}")
            return None
        resolved = self.env.get(name)
        if resolved is None:
            self.add(path, f"environment variable {name} is not set")
            return None
        if not resolved:
            self.add(path, f"environment variable {name} is empty")
            return None
        self._secrets.append(resolved)
        return Secret(resolved, f"env:{name}")

    def error(self) -> ConfigError | None:
        if not self.problems:
            return None
        secrets = sorted({s for s in self._secrets if len(s) >= _MIN_SCRUB_LEN}, key=len)
        problems = []
        for problem in self.problems:
            for secret in reversed(secrets):  # longest first
                problem = problem.replace(secret, "***")
            problems.append(problem)
        return ConfigError(problems)


class Reader:
    """Typed access to one mapping at `path`; records problems in `ctx`."""

    def __init__(self, ctx: Context, path: str, data: object) -> None:
        self.ctx = ctx
        self.path = path
        self.given = data is not None and data is not MISSING
        self._used: set[str] = set()
        self.data: dict[Any, Any] = {}
        if isinstance(data, dict):
            self.data = data
        elif self.given:
            ctx.add(path, f"must be a mapping, got {kind_of(data)}")

    # -- plumbing -------------------------------------------------------------

    def at(self, key: object) -> str:
        return join_path(self.path, key)

    def problem(self, key: object, message: str) -> None:
        self.ctx.add(self.at(key), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        """The untyped value (MISSING when absent); marks `key` as known."""
        self._used.add(key)
        return self.data.get(key, MISSING)

    def section(self, key: str) -> Reader:
        return Reader(self.ctx, self.at(key), self.raw(key))

    def finish(self) -> None:
        """Report keys that no accessor asked for."""
        for key in self.data:
            if key not in self._used:
                self.problem(key, "unknown key" + suggest(str(key), sorted(self._used)))

    # -- scalars --------------------------------------------------------------

    def string(
        self,
        key: str,
        default: str,
        *,
        choices: Sequence[str] | None = None,
        lower: bool = False,
    ) -> str:
        value = self.raw(key)
        if value is MISSING:
            return default
        checked = self._check_string(key, value, choices, lower)
        return default if checked is None else checked

    def required_string(self, key: str, what: str = "a non-empty string") -> str:
        """The string, or '' (after recording a problem) when missing or wrong."""
        value = self.raw(key)
        if value is MISSING or value is None:
            self.problem(key, f"is required ({what})")
            return ""
        return self._check_string(key, value, None, False) or ""

    def optional_string(self, key: str) -> str | None:
        value = self.raw(key)
        if value is MISSING or value is None:
            return None
        return self._check_string(key, value, None, False)

    def _check_string(
        self, key: str, value: object, choices: Sequence[str] | None, lower: bool
    ) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(key, f"must be a non-empty string, got {show(value)}")
            return None
        if lower:
            value = value.lower()
        if choices is not None and value not in choices:
            self.problem(
                key,
                f"must be one of {', '.join(choices)}, got {show(value)}" + suggest(value, choices),
            )
            return None
        return value

    def integer(
        self,
        key: str,
        default: int,
        *,
        lo: int | None = None,
        hi: int | None = None,
        expect: str | None = None,
    ) -> int:
        value = self.raw(key)
        if value is MISSING:
            return default
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (lo is None or value >= lo)
            and (hi is None or value <= hi)
        ):
            return value
        if expect is None:
            expect = "must be an integer"
            if lo is not None and hi is not None:
                expect += f" {lo}..{hi}"
            elif lo is not None:
                expect += f" >= {lo}"
            elif hi is not None:
                expect += f" <= {hi}"
        self.problem(key, f"{expect}, got {show(value)}")
        return default

    def number(
        self,
        key: str,
        default: float,
        *,
        lo: float | None = None,
        hi: float | None = None,
        lo_open: bool = False,
    ) -> float:
        value = self.raw(key)
        if value is MISSING:
            return default
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            above = lo is None or (value > lo if lo_open else value >= lo)
            if above and (hi is None or value <= hi):
                return float(value)
        expect = "must be a number"
        if lo is not None and hi is not None:
            expect += f" in {'(' if lo_open else '['}{_bound(lo)}, {_bound(hi)}]"
        elif lo is not None:
            expect += f" {'>' if lo_open else '>='} {_bound(lo)}"
        elif hi is not None:
            expect += f" <= {_bound(hi)}"
        self.problem(key, f"{expect}, got {show(value)}")
        return default

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is MISSING:
            return default
        if isinstance(value, bool):
            return value
        self.problem(key, f"must be true or false, got {show(value)}")
        return default

    def secret(self, key: str) -> Secret | None:
        value = self.raw(key)
        if value is MISSING or value is None:
            return None
        return self.ctx.resolve_secret(self.at(key), value)

    # -- containers -----------------------------------------------------------

    def string_list(self, key: str) -> tuple[str, ...] | None:
        """A list of non-empty strings; None when absent, null or invalid."""
        value = self.raw(key)
        if value is MISSING or value is None:
            return None
        if not isinstance(value, list):
            self.problem(key, f"must be a list of strings, got {show(value)}")
            return None
        ok = True
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.problem(f"{key}[{i}]", f"must be a non-empty string, got {show(item)}")
                ok = False
        return tuple(value) if ok else None

    def mapping(self, key: str) -> dict[Any, Any]:
        """A free-form mapping (adapter options, ...); {} when absent or invalid."""
        value = self.raw(key)
        if value is MISSING or value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(key, f"must be a mapping, got {kind_of(value)}")
            return {}
        return dict(value)

    def string_map(self, key: str) -> dict[str, str]:
        """A mapping of strings to strings. Values are never echoed (headers may be secret)."""
        result: dict[str, str] = {}
        for name, value in self.mapping(key).items():
            path = f"{key}.{name}"
            if isinstance(name, bool) or not isinstance(name, str) or not name:
                hint = ""
                if isinstance(name, bool):
                    hint = " (quote it: YAML reads yes/no/on/off as booleans)"
                self.problem(path, f"key must be a non-empty string{hint}")
            elif not isinstance(value, str):
                self.problem(path, f"must be a string, got {kind_of(value)}")
            else:
                result[name] = value
        return result

    def entries(self, key: str) -> list[tuple[str, Reader]]:
        """Named sub-mappings (`providers`, `deployments`, `routes`): (name, reader) pairs."""
        out: list[tuple[str, Reader]] = []
        for name, value in self.mapping(key).items():
            if not isinstance(name, str) or not name.strip():
                self.problem(f"{key}.{name}", f"name must be a non-empty string, got {show(name)}")
                continue
            out.append((name, Reader(self.ctx, self.at(f"{key}.{name}"), value)))
        return out


# -- YAML ---------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` keys may legitimately be overridden
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base class reports it
            if duplicate:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {show(key)}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file; ConfigFileError (with line and column) on failure.

    Messages use only the parser's problem text and position, never the
    offending line, which could hold a literal secret.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigFileError([f"{path}: cannot read: {e.strerror or e}"]) from None
    return parse_yaml(data, path)


def parse_yaml(data: bytes, path: str | os.PathLike[str]) -> Any:
    """Parse a config file's bytes (`path` names it in messages), as `read_yaml` does."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigFileError([f"{path}: not valid UTF-8 (byte {e.start})"]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = e.problem or e.context or "invalid YAML"
        raise ConfigFileError([f"{path}: YAML error{where}: {what}"]) from None
    except yaml.YAMLError as e:
        raise ConfigFileError([f"{path}: YAML error: {type(e).__name__}"]) from None
