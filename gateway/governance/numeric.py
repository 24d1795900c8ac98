"""Digit-anchored detectors in one scan: phone, card, IBAN, national IDs, IPv4.

One compiled regex per set of wanted types. It starts with a character class
(`[0-9+]`), so the regex engine skips everything else in C; a lookbehind right
after that first character rejects positions inside a number or a word, and a
cheap lookahead rejects numbers too short for any detector. Each alternative is
written *after* the first character (its first-character constraint is a
lookbehind), and is named; Python then validates the winner (checksums, ranges,
layout) and fixes the span's start for values that begin with letters (IBAN,
NINO, NIE). A rejected candidate resumes the scan one character later, so it
never hides an overlapping valid one; an IBAN-shaped candidate that fails its
checksum is skipped whole (its digits are not a phone number).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from gateway.governance.spans import Span, left_ok, right_ok

# Alternative name -> detector type. Order = priority when several match at one position.
_BRANCHES: dict[str, tuple[str, str]] = {
    # IBAN: 2 letters + 2 check digits + up to 30 alphanumerics, optionally in groups.
    "iban": ("iban", r"(?<=[A-Z]{2}[0-9])[0-9](?:\x20?[A-Z0-9]){10,30}"),
    # UK National Insurance number: AB 12 34 56 C / AB123456C.
    "nino": (
        "national_id",
        r"(?:(?<=[A-Z]{2}[0-9])|(?<=[A-Z]{2}\x20[0-9]))[0-9](?P<ns>\x20?)[0-9]{2}(?P=ns)"
        r"[0-9]{2}(?P=ns)[A-D](?![A-Za-z0-9_])",
    ),
    # Spanish NIE: X1234567L (X/Y/Z, 7 digits, check letter).
    "nie": (
        "national_id",
        r"(?:(?<=[XYZ][0-9])|(?<=[XYZ]-[0-9]))[0-9]{6}-?[A-Z](?![A-Za-z0-9_])",
    ),
    # International phone: +country then digits with single separators or one (area).
    "intl": (
        "phone",
        r"(?<=\+)[1-9](?:[0-9]|\([0-9]{1,4}\)|[\x20.\-](?=[0-9(]))*+(?![A-Za-z0-9_])",
    ),
    # Card: 13-19 digits, contiguous or grouped from a first group of 4 (layout checked later).
    "card": (
        "card",
        r"(?<=[2-6])[0-9]{3}(?:[0-9]{9,15}|[\x20\-](?:[\x20\-]?[0-9]){9,15})(?![0-9])",
    ),
    # US SSN: 123-45-6789 / 123 45 6789 (never without separators: too ambiguous).
    "ssn": (
        "national_id",
        r"(?<=[0-8])[0-9]{2}(?P<ss>[\x20\-])[0-9]{2}(?P=ss)[0-9]{4}(?![0-9]|[\x20\-][0-9])",
    ),
    # North American (area code 2-9xx): (555) 123-4567, 555-123-4567, 555.123.4567,
    # 555 123 4567.
    "nanp": (
        "phone",
        r"(?:(?<=\([2-9])[0-9]{2}\)\x20?|(?<=[2-9])[0-9]{2}(?P<ps>[\x20.\-]))"
        r"[0-9]{3}(?(ps)(?P=ps)|[\x20.\-])[0-9]{4}(?![0-9]|[.\-][0-9])",
    ),
    # National with trunk 0 and one consistent separator: 020 7946 0958, 01 23 45 67 89.
    "trunk": (
        "phone",
        r"(?<=0)(?:0[1-9][0-9]{0,2}|[1-9][0-9]{0,3})"  # 0 + area code, or 00 + country
        r"(?P<ts>[\x20\-/])[0-9]{2,8}(?:(?P=ts)[0-9]{2,8}){0,3}(?![0-9]|[\x20\-/][0-9])",
    ),
    "ipv4": ("ip", r"(?<=[0-9])[0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?![0-9]|\.[0-9])"),
    # Spanish DNI: 12345678Z (check letter).
    "dni": ("national_id", r"(?<=[0-9])[0-9]{7}-?[A-Z](?![A-Za-z0-9_])"),
}
_LETTER_LED = ("iban", "nino", "nie")
NUMERIC_TYPES = frozenset(kind for kind, _ in _BRANCHES.values())


@lru_cache(maxsize=64)
def _scanner(types: frozenset[str]) -> re.Pattern[str] | None:
    names = [name for name, (kind, _) in _BRANCHES.items() if kind in types]
    if not names:
        return None
    # Before the first character: no digit, no lowercase letter (uppercase only
    # when a letter-led value is wanted), unless it is a JSON escape (`\n`).
    before = "0-9a-z_" if any(n in _LETTER_LED for n in names) else "0-9A-Za-z_"
    alternatives = "|".join(f"(?P<{n}>{_BRANCHES[n][1]})" for n in names)
    return re.compile(
        # \x00 (never a first character: every alternative's lookbehind wants a
        # digit or "+") makes the engine test the class with a bitmap: 2x faster.
        rf"[0-9+\x00](?:(?<![{before}].)|(?<=\\[nrt].))"
        r"(?=[0-9A-Z\x20().\-/]{6})"  # every value has at least 7 characters
        rf"(?:{alternatives})"
    )


def find_numeric(text: str, types: frozenset[str]) -> list[Span]:
    """Spans of the digit-anchored types in `types` (unresolved; see `spans.resolve`)."""
    scanner = _scanner(types & NUMERIC_TYPES)
    if scanner is None:
        return []
    out: list[Span] = []
    pos = 0
    search = scanner.search
    while (m := search(text, pos)) is not None:
        name = m.lastgroup or ""
        found = _CHECKS[name](text, m.start(), m.end(), m)
        if found is None:
            pos = m.start() + 1
            continue
        start, end = found
        if start < 0:  # shaped like a value but invalid: no finding inside it either
            pos = end
            continue
        out.append(Span(start, end, _BRANCHES[name][0], text[start:end]))
        pos = end
    return out


# --- validation of each alternative: (text, start, end, match) -> (start, end) | None ---
# (a negative start means: no finding, and resume the scan at `end`)

Check = Callable[[str, int, int, re.Match[str]], tuple[int, int] | None]


def _iban(text: str, start: int, end: int, m: re.Match[str]) -> tuple[int, int] | None:
    start -= 2
    length = IBAN_LENGTHS.get(text[start : start + 2])
    if length is None or not left_ok(text, start):
        return None
    chars: list[str] = []
    i = start
    while i < end and len(chars) < length:
        c = text[i]
        if c != " ":
            chars.append(c)
        i += 1
    if len(chars) < length or not right_ok(text, i) or not iban_ok("".join(chars)):
        return -1, i  # a mistyped IBAN: skip it, its digits are no phone number
    return start, i


def _nino(text: str, start: int, end: int, m: re.Match[str]) -> tuple[int, int] | None:
    spaced = m.group("ns") == " "
    if spaced != (text[start - 1] == " "):
        return None
    start -= 3 if spaced else 2
    prefix = text[start : start + 2]
    if (
        prefix[0] in "DFIQUV"
        or prefix[1] in "DFIOQUV"
        or prefix in _NINO_BAD_PREFIXES
        or not left_ok(text, start)
    ):
        return None
    return start, end


_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _nie(text: str, start: int, end: int, m: re.Match[str]) -> tuple[int, int] | None:
    start -= 2 if text[start - 1] == "-" else 1
    if not left_ok(text, start):
        return None
    raw = text[start:end].replace("-", "")
    number = int(str("XYZ".index(raw[0])) + raw[1:8])
    return (start, end) if _DNI_LETTERS[number % 23] == raw[8] else None


def _dni(text: str, start: int, end: int, m: re.Match[str]) -> tuple[int, int] | None:
    if not left_ok(text, start, "."):
        return None
    return (
        (start, end) if _DNI_LETTERS[int(text[start : start + 8]) % 23] == text[end - 1] else None
    )


def _intl(text: str, start: int, end: int, m: re.Match[str]) -> tuple[int, int] | None:
    raw = text[start:end]
    digits = sum(c.isdigit() for c in raw)
    if not 8 <= digits <= 15 or raw.count("(") > 1 or not left_ok(text, start, "+"):
        return None
    return start, end


def _card(text: str, start: int, end: int, m: re.Match[str]) -> tuple[int, int] | None:
    raw = text[start:end]
    spaced, dashed = " " in raw, "-" in raw
    if spaced and dashed:
        return None
    sep = " " if spaced else "-" if dashed else ""
    if not left_ok(text, start, ".,") or _after_digits(text, start, "-" + sep):
        return None
    groups = raw.split(sep) if sep else [raw]
    if len(groups) > 1 and len(groups[0]) != 4:  # every grouped layout starts with 4 digits
        return None
    for k in range(len(groups), 0, -1):
        digits = "".join(groups[:k])
        if len(digits) < 13:
            return None
        if len(digits) <= 19 and _layout_ok(groups[:k]) and card_ok(digits):
            stop = start + len(sep.join(groups[:k]))
            ok = right_ok(text, stop) and not _continues(text, stop, sep)
            return (start, stop) if ok else None
    return None


def _continues(text: str, stop: int, sep: str) -> bool:
    """True when the groups go on after `stop` ("4111-1111-1111-1111-1111"): a longer number.

    A short trailing group after a space ("4111 1111 1111 1111 123", "... 12/25") does not.
    """
    if not sep or not text.startswith(sep, stop):
        return False
    run = 0
    while stop + 1 + run < len(text) and text[stop + 1 + run].isdigit():
        run += 1
    return run > 0 and (sep == "-" or run == 4)


def _layout_ok(groups: list[str]) -> bool:
    if len(groups) == 1:
        return True
    sizes = [len(g) for g in groups]
    if sizes in ([4, 6, 5], [4, 6, 4]):  # Amex, Diners
        return True
    return all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4


def _ssn(text: str, start: int, end: int, m: re.Match[str]) -> tuple[int, int] | None:
    area, group, serial = text[start : start + 3], text[start + 4 : start + 6], text[end - 4 : end]
    if (
        area in ("000", "666")
        or group == "00"
        or serial == "0000"
        or f"{area}{group}{serial}" in _SSN_INVALID
        or not left_ok(text, start, ".")
        or not right_ok(text, end)
        or _after_digits(text, start, text[start + 3])
    ):
        return None
    return start, end


_SSN_INVALID = frozenset({"078051120", "219099999", "123456789"})  # famous non-SSNs


def _nanp(text: str, start: int, end: int, m: re.Match[str]) -> tuple[int, int] | None:
    if not right_ok(text, end):
        return None
    if m.group("ps") is None:  # "(555) 123-4567": the value starts at the parenthesis
        start -= 1
    if start >= 2 and text[start - 1] in "-. " and text[start - 2].isdigit():
        # "1-800-555-0199": take the country code along
        if text[start - 2] == "1" and left_ok(text, start - 2, "+."):
            return start - 2, end
        if text[start - 1] != " ":  # "12-555-123-4567": part of a longer dashed number
            return None
    return (start, end) if left_ok(text, start, ".") else None


def _trunk(text: str, start: int, end: int, m: re.Match[str]) -> tuple[int, int] | None:
    raw = text[start:end]
    digits = sum(c.isdigit() for c in raw)
    if not 9 <= digits <= 15 or not left_ok(text, start, ".-/") or not right_ok(text, end):
        return None
    return None if _after_digits(text, start, m.group("ts")) else (start, end)


def _after_digits(text: str, start: int, seps: str) -> bool:
    """True for "12-4111..." or "30 000 000...": more groups of a larger number come before."""
    return start >= 2 and text[start - 1] in seps and text[start - 2].isdigit()


def _ipv4(text: str, start: int, end: int, m: re.Match[str]) -> tuple[int, int] | None:
    if not left_ok(text, start, ".") or not right_ok(text, end):
        return None
    octets = text[start:end].split(".")
    for octet in octets:
        if (len(octet) > 1 and octet[0] == "0") or int(octet) > 255:
            return None
    # Not personal and ubiquitous in code and configs: 0.x (unspecified),
    # 127.x (loopback), 255.x (netmasks, broadcast).
    return None if octets[0] in ("0", "127", "255") else (start, end)


_CHECKS: dict[str, Check] = {
    "iban": _iban,
    "nino": _nino,
    "nie": _nie,
    "intl": _intl,
    "card": _card,
    "ssn": _ssn,
    "nanp": _nanp,
    "trunk": _trunk,
    "ipv4": _ipv4,
    "dni": _dni,
}

# --- checksums ---

_LUHN_DOUBLE = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_ok(digits: str) -> bool:
    values = [ord(c) - 48 for c in digits]
    total = sum(values[-1::-2]) + sum(_LUHN_DOUBLE[v] for v in values[-2::-2])
    return total % 10 == 0


def card_ok(digits: str) -> bool:
    """Known issuer prefix (IIN) with a length it issues, and a valid Luhn check digit."""
    n = len(digits)
    p2, p3, p4 = int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":  # Visa
        lengths_ok = n in (13, 16, 19)
    elif 51 <= p2 <= 55 or 2221 <= p4 <= 2720:  # Mastercard
        lengths_ok = n == 16
    elif p2 in (34, 37):  # American Express
        lengths_ok = n == 15
    elif p4 == 6011 or 644 <= p3 <= 649 or p2 == 65:  # Discover
        lengths_ok = 16 <= n <= 19
    elif 300 <= p3 <= 305 or p2 in (36, 38, 39):  # Diners Club
        lengths_ok = 14 <= n <= 19
    elif 3528 <= p4 <= 3589 or p2 == 62:  # JCB, UnionPay
        lengths_ok = 16 <= n <= 19
    elif p2 in (50, 56, 57, 58, 63, 67):  # Maestro
        lengths_ok = 13 <= n <= 19
    else:
        return False
    return lengths_ok and luhn_ok(digits)


def iban_ok(iban: str) -> bool:
    """Country length and ISO 7064 mod-97 check (`iban` without spaces, upper case)."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rem = 0
    for c in iban[4:] + iban[:4]:
        rem = (rem * (100 if c.isalpha() else 10) + int(c, 36)) % 97
    return rem == 1


# IBAN length per country (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
