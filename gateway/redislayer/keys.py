"""Key layout: hash tags so that every multi-key operation, transaction and script touches
one Redis Cluster slot (the same layout on a single node, so one code path serves both).

A key is ``{prefix:group}:rest``: Redis hashes only what is inside the braces, so all
keys of one group (a deployment's profile counters, all spend counters, the weights
table and its lease ...) live in one slot and can be changed together atomically.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.crc import key_slot


def tagged(prefix: str, group: str, *rest: str) -> str:
    """``{prefix:group}:rest...`` (the group is the hash tag)."""
    head = f"{{{prefix.rstrip(':')}:{group}}}"
    return ":".join((head, *rest)) if rest else head


def slot_of(key: str | bytes) -> int:
    return key_slot(key.encode() if isinstance(key, str) else key)


def one_slot(keys: Iterable[str | bytes]) -> bool:
    """True when every key hashes to the same cluster slot (or there are none)."""
    return len({slot_of(k) for k in keys}) <= 1
