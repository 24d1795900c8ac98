"""Output filter: matches split across chunks are caught, and the hold-back stays small."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.governance import FilterResult, OutputFilter

PATTERNS = [("codename", r"Project\s+Nightingale"), ("internal", r"(?i)\binternal-only\b")]
DETECTORS = {"email", "card", "secret"}
TEXT = (
    "Hello! The plan for Project Nightingale is ready; mail bob@example.com "
    "or pay with 4111 1111 1111 1111 today. This is INTERNAL-ONLY material. Bye."
)
REDACTED = (
    "Hello! The plan for [REDACTED:codename] is ready; mail [REDACTED:email] "
    "or pay with [REDACTED:card] today. This is [REDACTED:internal] material. Bye."
)
NAMES = ["codename", "email", "card", "internal"]


def chunks_at(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def run(chunks: list[str], action: str = "redact", window: int = 32) -> tuple[str, bool, list[str]]:
    out_filter = OutputFilter(PATTERNS, DETECTORS, action, window)  # type: ignore[arg-type]
    emitted: list[str] = []
    names: list[str] = []
    for chunk in chunks:
        result = out_filter.feed(chunk)
        emitted.append(result.text)
        names += result.matched
        if result.stopped:
            return "".join(emitted), True, names
    result = out_filter.flush()
    return "".join(emitted) + result.text, result.stopped, names + list(result.matched)


def test_redact_in_one_piece() -> None:
    assert run([TEXT]) == (REDACTED, False, NAMES)


@pytest.mark.parametrize("window", [24, 32, 64])
def test_redact_split_at_every_boundary(window: int) -> None:
    for cut in range(len(TEXT) + 1):
        assert run([TEXT[:cut], TEXT[cut:]], window=window) == (REDACTED, False, NAMES)
    assert run(list(TEXT), window=window) == (REDACTED, False, NAMES)


def test_stop_split_at_every_boundary() -> None:
    expected = ("Hello! The plan for ", True, ["codename"])
    for cut in range(len(TEXT) + 1):
        assert run([TEXT[:cut], TEXT[cut:]], "stop") == expected
    assert run(list(TEXT), "stop") == expected
    later = TEXT.replace("Project Nightingale", "the project")
    prefix = later[: later.index("bob@")]
    for cut in range(len(later) + 1):
        assert run([later[:cut], later[cut:]], "stop") == (prefix, True, ["email"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_arbitrary_splits(cuts: list[int]) -> None:
    chunks = chunks_at(TEXT, cuts)
    assert run(chunks) == (REDACTED, False, NAMES)
    assert run(chunks, "stop") == ("Hello! The plan for ", True, ["codename"])


ITEMS = ["bob@example.com", "4111111111111111", "Project Nightingale", "internal-only"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(ITEMS),
            st.text(alphabet=st.sampled_from(list("abc xyz.,")), min_size=1, max_size=30),
        ),
        max_size=10,
    ),
    st.lists(st.integers(min_value=0, max_value=1000), max_size=20),
)
def test_streamed_equals_one_shot(pieces: list[str], cuts: list[int]) -> None:
    text = " ".join(pieces)
    assert run(chunks_at(text, cuts)) == run([text])
    assert run(chunks_at(text, cuts), "stop") == run([text], "stop")


def test_hold_back_is_bounded_by_the_window() -> None:
    text = "plain words without anything sensitive in them, " * 20
    window = 16
    out_filter = OutputFilter(PATTERNS, DETECTORS, "redact", window)
    fed = emitted = 0
    for chunk in chunks_at(text, list(range(0, len(text), 7))):
        fed += len(chunk)
        emitted += len(out_filter.feed(chunk).text)
        assert fed - emitted <= window  # never a whole answer; at most `window` behind
    assert emitted + len(out_filter.flush().text) == len(text)


def test_a_match_longer_than_the_window_may_slip() -> None:
    """The documented trade-off: with redact, only its head is caught."""
    text = "token: Project      Nightingale and more text after it to push the window on"
    emitted, _, _ = run(list(text), window=8)
    assert "Nightingale" in emitted


def test_after_stop_nothing_more_is_emitted() -> None:
    out_filter = OutputFilter(detectors={"email"}, action="stop", window=8)
    result = out_filter.feed("write to bob@example.com now, then more text")
    assert result == FilterResult("write to ", True, ("email",))
    assert out_filter.stopped
    assert out_filter.feed("more") == FilterResult("", True)
    assert out_filter.flush() == FilterResult("", True)


def test_short_answer_is_emitted_at_flush() -> None:
    out_filter = OutputFilter(detectors={"email"}, window=64)
    assert out_filter.feed("Hi, bob@example.com") == FilterResult("")
    assert out_filter.flush() == FilterResult("Hi, [REDACTED:email]", False, ("email",))
    assert out_filter.flush() == FilterResult("")


def test_custom_replacement_and_precompiled_pattern() -> None:
    out_filter = OutputFilter([("n", re.compile(r"\d{3}"))], replacement="<{name}>", window=4)
    text = out_filter.feed("a 123 b 45 c 6789").text + out_filter.flush().text
    assert text == "a <n> b 45 c <n>9"


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError, match="action"):
        OutputFilter(action="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window"):
        OutputFilter(window=0)
    with pytest.raises(ValueError, match="unknown output filter detectors: passport"):
        OutputFilter(detectors={"passport"})
    with pytest.raises(ValueError, match="'bad' is not a valid regex"):
        OutputFilter([("bad", "(unclosed")])
