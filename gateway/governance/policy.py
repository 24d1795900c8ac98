"""PII policy: one action per type, and the inspection of a request against it.

Actions: `redact` (placeholders out, originals restored in the answer), `block`
(the request is refused, naming the types found), `local_only` (only
deployments marked `local: true` may serve it), `allow` (not inspected at all).
Types absent from the policy are allowed. `inspect_request` walks every text
of the request once (string content, text parts, tool call arguments, tool
results); images and other non-text parts are never inspected.

An `Inspection` carries types and counts, never values: its repr is safe to log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, cast, get_args

from gateway.governance.detectors import PII_TYPES, detect
from gateway.governance.redact import PLACEHOLDER, Redactor, TextSlot, iter_texts, with_texts
from gateway.governance.spans import Span
from gateway.request import ChatRequest
from gateway.value_class import value_class

PiiAction = Literal["redact", "block", "local_only", "allow"]
PII_ACTIONS: tuple[str, ...] = get_args(PiiAction)


@dataclass(frozen=True, slots=True, init=False)
class PiiPolicy:
    """`actions`: type -> redact | block | local_only | allow (validated, read-only)."""

    actions: Mapping[str, PiiAction]
    inspected: frozenset[str] = field(repr=False)  # types with an action other than allow
    redacted: frozenset[str] = field(repr=False)

    def __init__(self, actions: Mapping[str, str]) -> None:
        for kind, action in actions.items():
            if kind not in PII_TYPES:
                raise ValueError(f"unknown PII type {kind!r} (known: {', '.join(PII_TYPES)})")
            if action not in PII_ACTIONS:
                raise ValueError(
                    f"PII action for {kind!r} must be one of {', '.join(PII_ACTIONS)}, "
                    f"got {action!r}"
                )
        checked = {k: cast(PiiAction, a) for k, a in actions.items()}
        object.__setattr__(self, "actions", MappingProxyType(checked))
        object.__setattr__(
            self, "inspected", frozenset(k for k, a in checked.items() if a != "allow")
        )
        object.__setattr__(
            self, "redacted", frozenset(k for k, a in checked.items() if a == "redact")
        )

    def __hash__(self) -> int:
        return hash(frozenset(self.actions.items()))

    def override(self, actions: Mapping[str, str] | None) -> PiiPolicy:
        """This policy with `actions` (e.g. a route's or key's) taking precedence per type."""
        if not actions:
            return self
        return PiiPolicy({**self.actions, **actions})

    def action(self, kind: str) -> PiiAction:
        return self.actions.get(kind, "allow")


_STRICTNESS: dict[str, int] = {"allow": 0, "redact": 1, "local_only": 2, "block": 3}


def strictest(policies: Iterable[PiiPolicy]) -> PiiPolicy:
    """Per type, the strictest action of any policy (block > local_only > redact > allow)."""
    actions: dict[str, str] = {}
    for policy in policies:
        for kind, action in policy.actions.items():
            if _STRICTNESS[action] > _STRICTNESS[actions.get(kind, "allow")]:
                actions[kind] = action
    return PiiPolicy(actions)


@value_class
class Inspection:
    """What a request contains and what the policy decides; no values anywhere.

    `request` is what may be sent upstream: a redacted copy when `redactor` is
    set, else the inspected request itself. Check `blocked` first (answer 400
    `pii_detected`), then `local_only` (keep only `local: true` candidates).
    """

    request: ChatRequest = field(repr=False, compare=False)
    counts: Mapping[str, int] = field(default_factory=dict)  # type -> occurrences
    blocked: tuple[str, ...] = ()  # found types whose action is block
    local_only: tuple[str, ...] = ()  # found types whose action is local_only
    redacted: tuple[str, ...] = ()  # found types that were replaced by placeholders
    redactor: Redactor | None = field(default=None, repr=False, compare=False)

    @property
    def found(self) -> tuple[str, ...]:
        return tuple(sorted(self.counts))

    @property
    def requires_local(self) -> bool:
        return bool(self.local_only)

    def block_message(self) -> str:
        """Client-facing error text: names the types, never the values."""
        return (
            "request contains data that the gateway's policy does not allow to be sent: "
            + ", ".join(self.blocked)
        )

    def audit(self) -> dict[str, object]:
        """Fields for the structured audit log line (types and counts only)."""
        return {
            "types": list(self.found),
            "counts": dict(self.counts),
            "blocked": list(self.blocked),
            "local_only": list(self.local_only),
            "redacted": list(self.redacted),
        }


def inspect_request(chat: ChatRequest, policy: PiiPolicy) -> Inspection:
    """Detect the policy's types in every text of `chat` and decide (one pass over the text)."""
    types = policy.inspected
    if not types:
        return Inspection(chat)
    redact = policy.redacted
    counts: dict[str, int] = {}
    to_redact: list[tuple[TextSlot, str, list[Span]]] = []
    reserved: set[str] = set()
    for slot, text in iter_texts(chat.messages):
        spans = detect(text, types)
        if spans:
            for span in spans:
                counts[span.type] = counts.get(span.type, 0) + 1
            if redact and any(span.type in redact for span in spans):
                to_redact.append((slot, text, spans))
        if redact and "<" in text:
            reserved.update(PLACEHOLDER.findall(text))
    if not counts:
        return Inspection(chat)
    found = sorted(counts)
    blocked = tuple(k for k in found if policy.actions[k] == "block")
    local = tuple(k for k in found if policy.actions[k] == "local_only")
    if not to_redact:
        return Inspection(chat, counts, blocked, local)
    redactor = Redactor(redact, reserved)
    edits = {slot: redactor.redact_text(text, spans) for slot, text, spans in to_redact}
    redacted = tuple(k for k in found if k in redact)
    return Inspection(with_texts(chat, edits), counts, blocked, local, redacted, redactor)
