"""Route tiers: request traits, first-match selection, and check-config problems."""

from __future__ import annotations

from typing import Any

from gateway.request import ChatRequest
from gateway.routing.tiers import Tier, TierCondition, Traits, select_tier, tier_problems, traits_of


def chat(content: Any = "hi", **params: Any) -> ChatRequest:
    return ChatRequest(model="chat", messages=[{"role": "user", "content": content}], params=params)


def tier(name: str, **when: Any) -> Tier:
    return Tier(name, TierCondition(**when), "fallback", (f"{name}-dep",))


def chosen(tiers: list[Tier], traits: Traits) -> str | None:
    found = select_tier(tiers, traits)
    return None if found is None else found.name


def test_traits_token_estimate_images_tools_reasoning() -> None:
    t = traits_of(chat("x" * 400))
    assert t == Traits(prompt_tokens=104, images=False, tools=False, reasoning=False)
    parts = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:..."}},
    ]
    assert traits_of(chat(parts)).images
    assert traits_of(chat([{"type": "input_image", "image_url": "x"}])).images
    assert traits_of(chat(tools=[{"type": "function", "function": {"name": "f"}}])).tools
    assert not traits_of(chat(tools=[])).tools
    assert traits_of(chat(reasoning_effort="high")).reasoning
    assert traits_of(chat(reasoning_effort="medium")).reasoning
    assert not traits_of(chat(reasoning_effort="low")).reasoning
    assert traits_of(chat(), reasoning_header_value="True").reasoning
    assert not traits_of(chat(), reasoning_header_value="0").reasoning


def test_select_first_matching_tier() -> None:
    tiers = [
        tier("vision", images=True),
        tier("hard", reasoning=True),
        tier("long", min_prompt_tokens=2001),
        tier("cheap", max_prompt_tokens=2000, tools=False),
    ]
    assert chosen(tiers, Traits(10, images=True, reasoning=True)) == "vision"
    assert chosen(tiers, Traits(10, reasoning=True)) == "hard"
    assert chosen(tiers, Traits(2001)) == "long"
    assert chosen(tiers, Traits(2000)) == "cheap"
    assert select_tier(tiers, Traits(5, tools=True)) is None
    assert select_tier([], Traits(5)) is None


def test_no_problems_for_a_sound_tier_list() -> None:
    tiers = [
        tier("vision", images=True),
        tier("short", max_prompt_tokens=1000),
        tier("mid", min_prompt_tokens=1001, max_prompt_tokens=8000),
        tier("default"),
    ]
    assert tier_problems(tiers, "routes.chat.tiers") == []


def test_tier_after_unconditional_is_unreachable() -> None:
    tiers = [tier("short", max_prompt_tokens=100), tier("default"), tier("vision", images=True)]
    assert tier_problems(tiers, "routes.chat.tiers") == [
        "routes.chat.tiers[2]: unreachable, tier 'default' (tiers[1]) matches every request"
    ]


def test_tier_covered_by_an_earlier_one_is_unreachable() -> None:
    tiers = [tier("tools", tools=True), tier("tools-long", tools=True, min_prompt_tokens=5000)]
    assert tier_problems(tiers) == [
        "tiers[1]: unreachable, tier 'tools' (tiers[0]) matches every request it matches"
    ]


def test_tier_covered_by_several_earlier_ones_is_unreachable() -> None:
    tiers = [
        tier("with-tools", tools=True),
        tier("no-tools", tools=False, max_prompt_tokens=500),
        tier("unrelated", images=True, reasoning=True, tools=True),
        tier("short", max_prompt_tokens=300),
    ]
    assert tier_problems(tiers) == [
        "tiers[2]: unreachable, tier 'with-tools' (tiers[0]) matches every request it matches",
        "tiers[3]: unreachable, every request it matches is matched by"
        " tier 'with-tools' (tiers[0]), tier 'no-tools' (tiers[1])",
    ]


def test_empty_token_range_is_unreachable() -> None:
    assert tier_problems([tier("x", min_prompt_tokens=10, max_prompt_tokens=5)]) == [
        "tiers[0]: unreachable, min_prompt_tokens 10 > max_prompt_tokens 5"
    ]


def test_overlapping_token_ranges_with_identical_conditions() -> None:
    tiers = [
        tier("short", max_prompt_tokens=1000),
        tier("mid", min_prompt_tokens=1000, max_prompt_tokens=4000),
        tier("long-tools", min_prompt_tokens=2000, tools=True),  # other conditions: no report
        tier("long", min_prompt_tokens=3000),
    ]
    assert tier_problems(tiers, "routes.r.tiers") == [
        "routes.r.tiers[1]: prompt tokens 1000..4000 overlap tier 'short' (tiers[0]) (0..1000);"
        " 1000..1000 goes to tiers[0]",
        "routes.r.tiers[3]: prompt tokens 3000.. overlap tier 'mid' (tiers[1]) (1000..4000);"
        " 3000..4000 goes to tiers[1]",
    ]


def test_condition_covers_and_matches() -> None:
    everything = TierCondition()
    assert everything.unconditional and everything.matches(Traits(10**9, True, True, True))
    narrow = TierCondition(min_prompt_tokens=10, max_prompt_tokens=20, images=False)
    assert everything.covers(narrow) and not narrow.covers(everything)
    assert narrow.matches(Traits(10)) and narrow.matches(Traits(20))
    assert not narrow.matches(Traits(21)) and not narrow.matches(Traits(15, images=True))
