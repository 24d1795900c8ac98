"""Secret detector: API keys, tokens and private keys by their published shapes.

Every pattern starts with a literal, so the regex engine finds candidates with
its fast literal search instead of trying each position. A few checks are done
in Python afterwards (the character before a `k_live_` / `earer` literal, and
that a generic token mixes letters and digits so prose and identifiers are not
mistaken for keys).
"""

from __future__ import annotations

import re

from gateway.governance.spans import Span, left_ok
from gateway.value_class import value_class


@value_class
class _Shape:
    regex: re.Pattern[str]
    # The literal's head, left out of the regex so that it starts with a rarer
    # literal: one of these must come right before the match ("sk" in sk_live_).
    heads: tuple[str, ...] = ()
    group: str | None = None  # report only this group (e.g. the token after "Bearer ")
    mixed: int = -1  # when >= 0: value[mixed:] must contain a digit and a letter


_TOKEN = r"[A-Za-z0-9_\-]"
# Literals start with an uncommon letter where possible ("k-" rather than "sk-"):
# the engine's literal search stops at every occurrence of the first letter.
_SHAPES = (
    # OpenAI (sk-, sk-proj-, sk-svcacct-...) and Anthropic (sk-ant-api03-...)
    _Shape(re.compile(rf"k-{_TOKEN}{{20,300}}"), heads=("s",), mixed=3),
    # Stripe secret and restricted keys: sk_live_..., rk_test_...
    _Shape(re.compile(r"k_(?:live|test)_[A-Za-z0-9]{16,200}"), heads=("s", "r")),
    # AWS access key ids; Google API keys
    _Shape(
        re.compile(
            r"A(?:(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Za-z0-9])"
            rf"|Iza{_TOKEN}{{35}}(?!{_TOKEN}))"
        )
    ),
    # AWS secret access key, only when named as one
    _Shape(
        re.compile(
            r"_(?:secret|SECRET)_(?:access_|ACCESS_)?(?:key|KEY)[\"']?\s*[:=]\s*[\"']?"
            r"(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        heads=("aws", "AWS", "Aws"),
        group="v",
        mixed=0,
    ),
    # GitHub tokens: classic (ghp_, gho_, ghu_, ghs_, ghr_) and fine-grained
    _Shape(
        re.compile(
            r"g(?:h[pousr]_[A-Za-z0-9]{36,255}(?![A-Za-z0-9_])|ithub_pat_[A-Za-z0-9_]{22,255})"
        )
    ),
    # Slack tokens
    _Shape(re.compile(r"xox[abeoprs]-[A-Za-z0-9\-]{10,250}"), mixed=5),
    # JSON Web Tokens (header and payload are base64url JSON objects: "eyJ")
    # (only at the start of a token: a scan from inside a long run would be quadratic)
    _Shape(
        re.compile(
            rf"yJ(?<=eyJ)(?:(?<!{_TOKEN}eyJ)|(?<=\\[nrt]eyJ))"
            rf"{_TOKEN}{{8,}}+\.eyJ{_TOKEN}{{8,}}+\.{_TOKEN}*+"
        ),
        heads=("e",),
    ),
    # Bearer credentials (e.g. a pasted Authorization header)
    *(
        _Shape(
            re.compile(
                rf"{word}[ \t]+(?P<v>[A-Za-z0-9\-._~+/]{{20,2048}}=*)(?![A-Za-z0-9\-._~+/=])"
            ),
            group="v",
            mixed=0,
        )
        for word in ("Bearer", "bearer")
    ),
    # PEM / OpenSSH / PGP private key blocks (to the end of the text when the END line is missing)
    _Shape(
        re.compile(
            r"-----BEGIN[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
            r"(?:-----END[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----|\Z)"
        )
    ),
)


def find_secrets(text: str) -> list[Span]:
    out: list[Span] = []
    for shape in _SHAPES:
        for m in shape.regex.finditer(text):
            start = m.start()
            if shape.heads:
                head = next((h for h in shape.heads if text.endswith(h, 0, start)), None)
                if head is None:
                    continue
                start -= len(head)
            if not left_ok(text, start, "-"):
                continue
            if shape.group is not None:
                start, end = m.span(shape.group)
            else:
                end = m.end()
            value = text[start:end]
            if shape.mixed >= 0 and not _mixed(value, shape.mixed):
                continue
            out.append(Span(start, end, "secret", value))
    return out


def _mixed(value: str, skip: int) -> bool:
    tail = value[skip:]
    return any(c.isdigit() for c in tail) and any(c.isalpha() for c in tail)
