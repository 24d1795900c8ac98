"""Precision-oriented PII and secret detectors (pure: no I/O, no asyncio).

`detect(text, types)` returns sorted, non-overlapping `Span`s. Types:

- `email`: ASCII local part (max 64) `@` a dotted domain with an alphabetic TLD.
- `phone`: `+country` numbers (8-15 digits, single separators, one `(area)`),
  North American `(555) 123-4567` / `555-123-4567` / `555.123.4567` /
  `555 123 4567` (a leading `1-` is taken along), and national numbers with a
  trunk `0` and one consistent separator (`020 7946 0958`, `01 23 45 67 89`,
  9-13 digits). Plain digit runs (order ids, years, prices) are never phones.
- `card`: 13-19 digits, contiguous or in the usual groups (4-4-4-4, 4-6-5 ...),
  a known issuer prefix with a length it issues, and a valid Luhn digit.
- `iban`: country code, check digits, the country's length, mod-97 checksum.
- `national_id`: US SSN (`123-45-6789`, area not 000/666/9xx, group and serial
  not zero), UK NINO (prefix rules), Spanish DNI/NIE (check letter).
- `ip`: IPv4 with octet ranges (no leading zeros), IPv6 validated by
  `ipaddress`. Not reported: unspecified, loopback, `255.x` netmasks/broadcast,
  and IPv6 without any digit (`dead::beef`, `a::b` in code). A bare
  four-part version number (`1.2.3.4`) is an address; `v1.2.3.4` is not.
- `secret`: OpenAI/Anthropic `sk-`, Stripe `sk_live_`, AWS access key ids and
  named secret keys, GitHub `ghp_`/`github_pat_`, Google `AIza`, Slack `xox?-`,
  JWTs, `Bearer <token>`, PEM/OpenSSH/PGP private key blocks.

Boundaries are ASCII (a value glued to an ASCII letter or digit is not one), so
values inside CJK text are found; a JSON escape (`\\n`) right before a value
counts as a boundary, so raw JSON strings (tool arguments) are inspected too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable

from gateway.governance.credentials import find_secrets
from gateway.governance.numeric import NUMERIC_TYPES, find_numeric
from gateway.governance.spans import Span, left_ok, resolve, right_ok

__all__ = ["DETECTORS", "PII_TYPES", "Span", "collect", "detect"]

PII_TYPES: tuple[str, ...] = ("email", "phone", "card", "iban", "national_id", "ip", "secret")
ALL_TYPES = frozenset(PII_TYPES)

# --- email ---

_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9_\-])"
)


def find_emails(text: str) -> list[Span]:
    out: list[Span] = []
    at = text.find("@")  # memchr: far faster than any regex scan
    while at != -1:
        start = at
        floor = max(0, at - 64)
        while start > floor and text[start - 1] in _LOCAL:
            start -= 1
        too_long = start == floor and start > 0 and text[start - 1] in _LOCAL
        if start >= 1 and text[start - 1] == "\\" and start < at and text[start] in "ntr":
            start += 1  # "\nbob@...": a JSON escape, not part of the address
        while start < at and text[start] == ".":
            start += 1
        local = text[start:at]
        m = None
        if local and not too_long and local[-1] != "." and ".." not in local:
            m = _DOMAIN.match(text, at + 1)
        if m is not None:
            out.append(Span(start, m.end(), "email", text[start : m.end()]))
            at = text.find("@", m.end())
        else:
            at = text.find("@", at + 1)
    return out


# --- IPv6 (IPv4 is in the numeric scan) ---

_V6 = re.compile(r":[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*")  # starts with a literal: fast search
_HEX = frozenset("0123456789abcdefABCDEF")


def find_ipv6(text: str) -> list[Span]:
    out: list[Span] = []
    for m in _V6.finditer(text):
        start, end = m.span()
        floor = max(0, start - 4)
        while start > floor and text[start - 1] in _HEX:
            start -= 1
        while text[end - 1] == ".":
            end -= 1
        if text[end - 1] == ":" and text[end - 2] != ":":
            end -= 1
        token = text[start:end]
        colons = token.count(":")
        if (
            colons < 2
            or ("::" not in token and colons < 6)
            or not any(c.isdigit() for c in token)
            or not left_ok(text, start, ":.")
            or not right_ok(text, end)
        ):
            continue
        try:
            address = ipaddress.IPv6Address(token)
        except ValueError:
            continue
        if not (address.is_unspecified or address.is_loopback):
            out.append(Span(start, end, "ip", token))
    return out


# --- the public entry points ---


def collect(text: str, types: frozenset[str]) -> list[Span]:
    """All candidate spans of `types`, unsorted and possibly overlapping."""
    spans: list[Span] = []
    if "email" in types and "@" in text:
        spans += find_emails(text)
    if not types.isdisjoint(NUMERIC_TYPES):
        spans += find_numeric(text, types)
    if "ip" in types and ":" in text:
        spans += find_ipv6(text)
    if "secret" in types:
        spans += find_secrets(text)
    return spans


def detect(text: str, types: Iterable[str] = ALL_TYPES) -> list[Span]:
    """Findings of `types` in `text`: sorted, non-overlapping (leftmost, then longest wins)."""
    wanted = types if isinstance(types, frozenset) else frozenset(types)
    unknown = wanted - ALL_TYPES
    if unknown:
        raise ValueError(f"unknown PII types: {', '.join(sorted(unknown))}")
    return resolve(collect(text, wanted))


def _only(kind: str) -> Callable[[str], list[Span]]:
    types = frozenset({kind})

    def run(text: str) -> list[Span]:
        return resolve(collect(text, types))

    run.__name__ = f"detect_{kind}"
    return run


# One function per type, e.g. `DETECTORS["card"]("4111 1111 1111 1111")`.
DETECTORS: dict[str, Callable[[str], list[Span]]] = {kind: _only(kind) for kind in PII_TYPES}
