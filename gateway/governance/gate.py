"""The governance gate: one decision per request (block, redact, local-only, residency) and
the output transform that restores placeholders and filters the answer stream.

A deployment named directly gets the strictest policy of the routes that hold it: per PII
type the strictest action, every output filter, the intersection of their residencies. A
key narrows any of them (its PII actions win, its regions intersect)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from gateway.config.holding import routes_holding, strictest_residency
from gateway.config.model import Config, DeploymentConfig, KeyConfig, OutputFilterConfig
from gateway.governance.output_filter import OutputFilter
from gateway.governance.policy import PiiPolicy, inspect_request, strictest
from gateway.governance.redact import Redactor, Restorer
from gateway.request import ChatRequest, EmbedRequest
from gateway.streaming.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta


class PolicyRejected(Exception):
    def __init__(self, message: str, code: str, audit: dict[str, object]) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.audit = audit


@dataclass(slots=True)
class Decision:
    chat: ChatRequest
    allowed: Callable[[DeploymentConfig], bool] | None = None
    transform: OutputTransform | None = None
    audit: dict[str, object] | None = None  # set when the request was redacted or restricted

    @property
    def request(self) -> ChatRequest:
        return self.chat


@dataclass(slots=True)
class EmbedDecision:
    """The embeddings counterpart of Decision: vectors carry no text to restore or filter."""

    request: EmbedRequest
    allowed: Callable[[DeploymentConfig], bool] | None = None
    audit: dict[str, object] | None = None
    transform: None = None


class Governance:
    def __init__(self, config: Config) -> None:
        base = PiiPolicy(config.governance.pii)
        self._policies: dict[str, PiiPolicy] = {}
        self._outputs: dict[str, OutputFilterConfig | None] = {}
        self._residency: dict[str, tuple[str, ...] | None] = {}
        for name, route in config.routes.items():
            own = route.governance
            self._policies[name] = base.override(own.pii if own else None)
            self._outputs[name] = (own.output if own and own.output else None) or (
                config.governance.output
            )
            self._residency[name] = route.data_residency
        for dep, holders in routes_holding(config).items():
            if dep in config.routes:
                continue
            self._policies[dep] = strictest(self._policies[r] for r in holders)
            self._outputs[dep] = merged_outputs([self._outputs[r] for r in holders])
            self._residency[dep] = strictest_residency(self._residency[r] for r in holders)
        self._default = base
        self._default_output = config.governance.output

    def _policy(
        self, route: str, key: KeyConfig | None
    ) -> tuple[PiiPolicy, tuple[str, ...] | None]:
        """The route's PII policy and residency (`route`: the deployment's name when the
        client named one), narrowed by the key's."""
        policy = self._policies.get(route, self._default)
        residency = self._residency.get(route)
        if key is not None:  # a key narrows the route: its actions win, regions intersect
            policy = policy.override(key.pii)
            if key.data_residency is not None:
                allowed_regions = key.data_residency
                residency = tuple(
                    r
                    for r in (residency if residency is not None else allowed_regions)
                    if r in allowed_regions
                )
        return policy, residency

    def decide(self, chat: ChatRequest, route: str, key: KeyConfig | None = None) -> Decision:
        policy, residency = self._policy(route, key)
        audit: dict[str, object] = {}
        redactor: Redactor | None = None
        local_only = False
        if policy.inspected:
            chat = _without_signed_thinking(chat)
            inspection = inspect_request(chat, policy)
            if inspection.counts:
                audit.update(inspection.audit())
            if inspection.blocked:
                raise PolicyRejected(inspection.block_message(), "pii_detected", audit)
            chat = inspection.request
            redactor = inspection.redactor
            local_only = inspection.requires_local
        if residency is not None:
            audit["residency"] = list(residency)
        allowed = _allowed(residency, local_only)
        out_cfg = self._outputs.get(route, self._default_output)
        transform = None
        if redactor is not None or out_cfg is not None:
            transform = OutputTransform(redactor, out_cfg)
        return Decision(chat, allowed, transform, audit or None)

    def decide_embedding(
        self, request: EmbedRequest, route: str, key: KeyConfig | None = None
    ) -> EmbedDecision:
        """The PII policy over every text input (block, redact, local-only) and residency.
        Token arrays cannot be inspected: refused while the policy inspects anything."""
        policy, residency = self._policy(route, key)
        audit: dict[str, object] = {}
        local_only = False
        if policy.inspected:
            if request.tokenized:
                raise PolicyRejected(
                    "token-array input cannot be checked against the gateway's data policy; "
                    "send the inputs as text",
                    "pii_uninspectable",
                    {"tokenized": True},
                )
            texts = request.texts()
            chat = ChatRequest(request.model, [{"role": "user", "content": t} for t in texts])
            inspection = inspect_request(chat, policy)
            if inspection.counts:
                audit.update(inspection.audit())
            if inspection.blocked:
                raise PolicyRejected(inspection.block_message(), "pii_detected", audit)
            if inspection.redactor is not None:
                redacted = [m["content"] for m in inspection.request.messages]
                request = replace(request, inputs=redacted)
            local_only = inspection.requires_local
        if residency is not None:
            audit["residency"] = list(residency)
        return EmbedDecision(request, _allowed(residency, local_only), audit or None)


def _without_signed_thinking(chat: ChatRequest) -> ChatRequest:
    """Thinking blocks a Messages client sends back (for Anthropic only) are signed: they can
    be neither inspected nor redacted, and may hold values an earlier answer restored. While
    the policy inspects anything they are left out (Anthropic then gets no thinking for a
    tool loop they began; see providers/anthropic_body.py)."""
    native = chat.anthropic
    if not native or not native.get("thinking"):
        return chat
    kept: Any = {key: value for key, value in native.items() if key != "thinking"}
    return replace(chat, anthropic=kept)


def merged_outputs(outputs: list[OutputFilterConfig | None]) -> OutputFilterConfig | None:
    """Every filter at once: all detectors and patterns, `stop` if any stops, widest window."""
    given = [o for o in outputs if o is not None]
    if len(given) <= 1:
        return given[0] if given else None
    detectors: dict[str, None] = {}
    patterns: dict[str, str] = {}
    for o in given:
        detectors.update(dict.fromkeys(o.detectors))
        for name, pattern in o.patterns.items():
            patterns[
                name if patterns.get(name, pattern) == pattern else f"{name}.{len(patterns)}"
            ] = pattern
    return OutputFilterConfig(
        action="stop" if any(o.action == "stop" for o in given) else "redact",
        window=max(o.window for o in given),
        detectors=tuple(detectors),
        patterns=patterns,
    )


def _allowed(
    residency: tuple[str, ...] | None, local_only: bool
) -> Callable[[DeploymentConfig], bool] | None:
    if residency is None and not local_only:
        return None

    def allowed(dep: DeploymentConfig) -> bool:
        if local_only and not dep.local:
            return False
        # An on-premises model keeps data where it is; otherwise the region must be listed.
        return residency is None or dep.local or dep.region in residency

    return allowed


class OutputTransform:
    """Per response: output filter on the upstream text, then placeholder restoration.

    Filtering runs before restoring, so a user's own (restored) values are never
    taken for leaked output. Text held back by either stage is released at the
    finish event or at `flush()`.
    """

    def __init__(self, redactor: Redactor | None, output: OutputFilterConfig | None) -> None:
        self._text = redactor.restorer() if redactor else None
        self._reasoning = redactor.restorer() if redactor else None
        self._redactor = redactor
        self._tools: dict[int, Restorer] = {}
        self._filter = (
            OutputFilter(
                list(output.patterns.items()), output.detectors, output.action, output.window
            )
            if output is not None
            else None
        )
        self.stopped = False
        self.matched: set[str] = set()

    def _text_out(self, text: str, final: bool = False) -> str:
        if self._filter is not None:
            result = self._filter.flush() if final else self._filter.feed(text)
            self.matched.update(result.matched)
            text = result.text
            if result.stopped:
                self.stopped = True
        if self._text is not None:
            text = self._text.feed(text) + (self._text.flush() if final else "")
        return text

    def __call__(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            kind = type(event)
            if kind is TextDelta:
                text = self._text_out(event.text)  # type: ignore[union-attr]
                if text:
                    out.append(TextDelta(text))
                if self.stopped:
                    out.append(Finish("content_filter"))
                    return out
            elif kind is ReasoningDelta and self._reasoning is not None:
                text = self._reasoning.feed(event.text)  # type: ignore[union-attr]
                if text:
                    out.append(ReasoningDelta(text))
            elif kind is ToolCallDelta and self._redactor is not None:
                assert isinstance(event, ToolCallDelta)
                restorer = self._tools.setdefault(
                    event.index, self._redactor.restorer(json_string=True)
                )
                out.append(
                    ToolCallDelta(event.index, event.id, event.name, restorer.feed(event.arguments))
                )
            elif kind is Finish:
                out.extend(self.flush())
                if self.stopped:
                    out.append(Finish("content_filter"))
                    return out
                out.append(event)
            else:
                out.append(event)
        return out

    def flush(self) -> list[Event]:
        """Release held text (before the finish event or at the end of the stream)."""
        out: list[Event] = []
        text = self._text_out("", final=True)
        if text:
            out.append(TextDelta(text))
        if self._reasoning is not None:
            rest = self._reasoning.flush()
            if rest:
                out.append(ReasoningDelta(rest))
        for index, restorer in self._tools.items():
            rest = restorer.flush()
            if rest:
                out.append(ToolCallDelta(index, arguments=rest))
        return out
