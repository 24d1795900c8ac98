"""Route tiers: pick a route's strategy and deployments from traits of the request.

A route may list tiers; the first whose condition matches the request serves
it (`select_tier`); when none matches the caller uses the route's own
strategy and deployments.

Traits (`traits_of`):

- ``prompt_tokens``: `ChatRequest.estimated_prompt_tokens()`, about 4
  characters of message text per token plus 4 tokens per message (text parts
  only: no tokenizer, no image or tool-schema tokens). O(total text length).
  For an embeddings request: its inputs' tokens (exact for token arrays); it
  has no images or tools, and only the header marks it reasoning.
- ``images``: any message content part of type ``image_url`` or ``input_image``.
- ``tools``: the request has a non-empty ``tools`` list.
- ``reasoning``: ``reasoning_effort`` is ``medium`` or ``high``, or the
  configured reasoning header is truthy (``1``, ``true``, ``yes``, ``on``,
  ``medium``, ``high``; case-insensitive).

A `TierCondition` field left at None does not constrain. The token bounds are
both inclusive: ``min_prompt_tokens <= tokens <= max_prompt_tokens``, so
adjacent tiers read ``max_prompt_tokens: 1000`` then ``min_prompt_tokens: 1001``.

`tier_problems` is for check-config: tiers no request can reach (after an
unconditional tier, covered by one earlier tier or by several together, or
with an empty token range) and token ranges that partly overlap an earlier
tier with otherwise identical conditions (the earlier tier silently wins
there, e.g. ``max_prompt_tokens: 1000`` then ``min_prompt_tokens: 1000``). A
later range that contains an earlier one whole (a wider catch-all, such as a
final tier without token bounds) is the usual fallback pattern and not reported.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from gateway.config.model import Strategy
from gateway.request import AnyRequest, EmbedRequest
from gateway.value_class import value_class

IMAGE_PART_TYPES = frozenset({"image_url", "input_image"})
REASONING_EFFORTS = frozenset({"medium", "high"})
TRUTHY = frozenset({"1", "true", "yes", "on", "medium", "high"})
FLAGS = ("images", "tools", "reasoning")
MAX_TOKENS = 1 << 62  # stands for "no upper bound" in range arithmetic


@value_class
class Traits:
    prompt_tokens: int
    images: bool = False
    tools: bool = False
    reasoning: bool = False


@value_class
class TierCondition:
    min_prompt_tokens: int | None = None  # inclusive
    max_prompt_tokens: int | None = None  # inclusive
    images: bool | None = None
    tools: bool | None = None
    reasoning: bool | None = None

    @property
    def unconditional(self) -> bool:
        return self == TierCondition()

    @property
    def token_range(self) -> tuple[int, int]:
        """Inclusive (low, high); high is MAX_TOKENS without an upper bound."""
        low = self.min_prompt_tokens if self.min_prompt_tokens is not None else 0
        high = self.max_prompt_tokens if self.max_prompt_tokens is not None else MAX_TOKENS
        return max(low, 0), high

    def flags(self) -> tuple[bool | None, bool | None, bool | None]:
        return self.images, self.tools, self.reasoning

    def matches(self, traits: Traits) -> bool:
        low, high = self.token_range
        if not low <= traits.prompt_tokens <= high:
            return False
        have_flags = (traits.images, traits.tools, traits.reasoning)
        for want, have in zip(self.flags(), have_flags, strict=True):
            if want is not None and want != have:
                return False
        return True

    def covers(self, other: TierCondition) -> bool:
        """Every request `other` matches, this matches too."""
        for mine, theirs in zip(self.flags(), other.flags(), strict=True):
            if mine is not None and mine != theirs:
                return False
        low, high = self.token_range
        other_low, other_high = other.token_range
        return other_low > other_high or (low <= other_low and other_high <= high)


@value_class
class Tier:
    name: str
    when: TierCondition
    strategy: Strategy
    deployments: tuple[str, ...]
    k: int = 2


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in TRUTHY


def traits_of(chat: AnyRequest, reasoning_header_value: str | None = None) -> Traits:
    """The request's traits (see the module doc)."""
    if isinstance(chat, EmbedRequest):
        return Traits(chat.estimated_prompt_tokens(), False, False, _truthy(reasoning_header_value))
    images = False
    for message in chat.messages:
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(part, dict) and part.get("type") in IMAGE_PART_TYPES for part in content
        ):
            images = True
            break
    tools = chat.params.get("tools")
    effort = chat.params.get("reasoning_effort")
    reasoning = (isinstance(effort, str) and effort.lower() in REASONING_EFFORTS) or _truthy(
        reasoning_header_value
    )
    return Traits(
        prompt_tokens=chat.estimated_prompt_tokens(),
        images=images,
        tools=isinstance(tools, list) and len(tools) > 0,
        reasoning=reasoning,
    )


def select_tier(tiers: Sequence[Tier], traits: Traits) -> Tier | None:
    """The first tier whose condition matches, or None."""
    for tier in tiers:
        if tier.when.matches(traits):
            return tier
    return None


# -- check-config --------------------------------------------------------------


def _fmt_range(low: int, high: int) -> str:
    return f"{low}.." if high >= MAX_TOKENS else f"{low}..{high}"


def _ref(tiers: Sequence[Tier], i: int) -> str:
    return f"tier '{tiers[i].name}' (tiers[{i}])"


def _intersects(a: TierCondition, b: TierCondition) -> bool:
    """Some request matches both."""
    for x, y in zip(a.flags(), b.flags(), strict=True):
        if x is not None and y is not None and x != y:
            return False
    (a_low, a_high), (b_low, b_high) = a.token_range, b.token_range
    return max(a_low, b_low) <= min(a_high, b_high)


def _uncovered(condition: TierCondition, earlier: list[TierCondition]) -> bool:
    """Some request matches `condition` and none of `earlier` (exact, over all flag values)."""
    low, high = condition.token_range
    if low > high:
        return False
    options = [(v,) if v is not None else (False, True) for v in condition.flags()]
    for combo in itertools.product(*options):
        ranges = sorted(
            e.token_range
            for e in earlier
            if all(w is None or w == c for w, c in zip(e.flags(), combo, strict=True))
        )
        point = low  # the lowest token count not matched so far
        for r_low, r_high in ranges:
            if r_low > point:
                break
            point = max(point, r_high + 1)
            if point > high:
                break
        if point <= high:
            return True
    return False


def tier_problems(tiers: Sequence[Tier], path: str = "tiers") -> list[str]:
    """Unreachable and overlapping tiers, as ``{path}[i]: ...`` lines (e.g. routes.chat.tiers)."""
    problems: list[str] = []
    unreachable: set[int] = set()
    for i, tier in enumerate(tiers):
        cond = tier.when
        where = f"{path}[{i}]"
        low, high = cond.token_range
        if low > high:
            problems.append(
                f"{where}: unreachable, min_prompt_tokens {low} > max_prompt_tokens {high}"
            )
            unreachable.add(i)
            continue
        uncond = next((j for j in range(i) if tiers[j].when.unconditional), None)
        if uncond is not None:
            problems.append(f"{where}: unreachable, {_ref(tiers, uncond)} matches every request")
            unreachable.add(i)
            continue
        cover = next((j for j in range(i) if tiers[j].when.covers(cond)), None)
        if cover is not None:
            problems.append(
                f"{where}: unreachable, {_ref(tiers, cover)} matches every request it matches"
            )
            unreachable.add(i)
            continue
        if not _uncovered(cond, [t.when for t in tiers[:i]]):
            together = ", ".join(
                _ref(tiers, j)
                for j in range(i)
                if j not in unreachable and _intersects(tiers[j].when, cond)
            )
            problems.append(
                f"{where}: unreachable, every request it matches is matched by {together}"
            )
            unreachable.add(i)
            continue
        for j in range(i):
            other = tiers[j].when
            if j in unreachable or other.flags() != cond.flags():
                continue
            o_low, o_high = other.token_range
            lo, hi = max(low, o_low), min(high, o_high)
            if lo <= hi and not (low <= o_low and o_high <= high):
                problems.append(
                    f"{where}: prompt tokens {_fmt_range(low, high)} overlap {_ref(tiers, j)}"
                    f" ({_fmt_range(o_low, o_high)}); {_fmt_range(lo, hi)} goes to tiers[{j}]"
                )
    return problems
