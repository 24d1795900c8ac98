"""Detectors: true positives, and the look-alikes they must leave alone (precision first)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.governance.detectors import DETECTORS, PII_TYPES, detect
from gateway.governance.numeric import card_ok, iban_ok, luhn_ok


def found(text: str, kind: str | None = None) -> list[tuple[str, str]]:
    spans = detect(text) if kind is None else DETECTORS[kind](text)
    for span in spans:
        assert text[span.start : span.end] == span.value
    return [(span.type, span.value) for span in spans]


def values(text: str, kind: str) -> list[str]:
    return [value for _, value in found(text, kind)]


TRUE_POSITIVES: dict[str, list[tuple[str, str]]] = {
    "email": [
        ("write to bob@example.com today", "bob@example.com"),
        ("Mail: Jane.Doe+news@mail.example.co.uk.", "Jane.Doe+news@mail.example.co.uk"),
        ("<first_last-99@sub.domain.io>", "first_last-99@sub.domain.io"),
        ("请联系bob@example.cn谢谢", "bob@example.cn"),
    ],
    "phone": [
        ("call +1 (415) 555-0132 now", "+1 (415) 555-0132"),
        ("tel +44 20 7946 0958.", "+44 20 7946 0958"),
        ("whatsapp +4915112345678", "+4915112345678"),
        ("+33 1 23 45 67 89", "+33 1 23 45 67 89"),
        ("office (415) 555-0132", "(415) 555-0132"),
        ("office 415-555-0132", "415-555-0132"),
        ("office 415.555.0132", "415.555.0132"),
        ("office 415 555 0132", "415 555 0132"),
        ("toll free 1-800-555-0199", "1-800-555-0199"),
        ("London 020 7946 0958", "020 7946 0958"),
        ("mobile 07700 900123", "07700 900123"),
        ("Paris 01 23 45 67 89", "01 23 45 67 89"),
        ("Berlin 030/12345678", "030/12345678"),
        ("from abroad 0049 30 12345678", "0049 30 12345678"),
    ],
    "card": [
        ("visa 4111 1111 1111 1111 exp 12/25", "4111 1111 1111 1111"),
        ("visa 4111111111111111", "4111111111111111"),
        ("mc 5555-5555-5555-4444", "5555-5555-5555-4444"),
        ("mc 2223003122003222", "2223003122003222"),
        ("amex 3782 822463 10005", "3782 822463 10005"),
        ("amex 378282246310005", "378282246310005"),
        ("discover 6011111111111117", "6011111111111117"),
        ("diners 30569309025904", "30569309025904"),
        ("jcb 3530111333300000", "3530111333300000"),
        ("card 4111 1111 1111 1111 123 (cvv)", "4111 1111 1111 1111"),
    ],
    "iban": [
        ("IBAN DE89 3704 0044 0532 0130 00, thanks", "DE89 3704 0044 0532 0130 00"),
        ("GB82WEST12345698765432", "GB82WEST12345698765432"),
        ("to FR1420041010050500013M02606.", "FR1420041010050500013M02606"),
        ("NL91 ABNA 0417 1643 00", "NL91 ABNA 0417 1643 00"),
        ("NO9386011117947", "NO9386011117947"),
    ],
    "national_id": [
        ("SSN 536-22-8726", "536-22-8726"),
        ("ssn: 536 22 8726", "536 22 8726"),
        ("NI number AB123456C", "AB123456C"),
        ("NINO: AB 12 34 56 C.", "AB 12 34 56 C"),
        ("DNI 12345678Z", "12345678Z"),
        ("NIE X1234567L", "X1234567L"),
    ],
    "ip": [
        ("server 192.168.1.10 is down", "192.168.1.10"),
        ("from 8.8.8.8.", "8.8.8.8"),
        ("host 10.0.0.1:8080", "10.0.0.1"),
        ("addr 2001:db8::1 up", "2001:db8::1"),
        ("link fe80::1ff:fe23:4567:890a", "fe80::1ff:fe23:4567:890a"),
        ("full 2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
        ("[2001:db8::42]:443", "2001:db8::42"),
    ],
    "secret": [
        ("key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"),
        ("sk-ant-api03-" + "aB3" * 30, "sk-ant-api03-" + "aB3" * 30),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        ("ghp_" + "a1B2c3D4e5" * 4, "ghp_" + "a1B2c3D4e5" * 4),
        ("github_pat_11ABCDEFG0123456789_abcdefghij", "github_pat_11ABCDEFG0123456789_abcdefghij"),
        ("AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
        ("xoxb-123456789012-1234567890123-AbCdEf", "xoxb-123456789012-1234567890123-AbCdEf"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
        ),
        ("Authorization: Bearer abc123def456ghi789jkl012", "abc123def456ghi789jkl012"),
        (
            "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n"
            "-----END RSA PRIVATE KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA",
        ),
    ],
}


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [(kind, text, value) for kind, cases in TRUE_POSITIVES.items() for text, value in cases],
)
def test_true_positive(kind: str, text: str, value: str) -> None:
    assert values(text, kind) == [value]
    assert found(text) == [(kind, value)]  # and nothing else claims it


FALSE_POSITIVES = [
    # dates and times
    "2024-01-15",
    "15/01/2024",
    "01.02.2024",
    "05-06-2024",
    "2024年1月15日",
    "12:30:45",
    "2024-05-01T12:30:45Z",
    "10:30-11:45",
    # prices, amounts
    "$1,299.99",
    "€ 1.299,00",
    "USD 4111.11",
    "$12,345,678",
    "1,234,567",
    "SN: 30 000 000 000 000",
    "12 345 678 901",
    # order numbers, plain long numbers, ids
    "Order #123456789",
    "order 5551234567",
    "ORD-2024-000123",
    "12345678901234567890",
    "tracking 1Z999AA10123456784",
    "0123456789",
    "1234 5678 9012 3456",
    "serial 4111-1111-1111-1111-1111",
    "4111 1111 1111 1111 1111",
    "ref 12-536-22-8726",
    # versions
    "1.2.3",
    "v1.2.3.4",
    "Python 3.11.4",
    "version 10.0.19045.3803",
    "1.2.3.4.5",
    # ISBNs, UUIDs, hashes
    "978-0-306-40615-7",
    "0-306-40615-2",
    "ISBN 9780306406157",
    "123e4567-e89b-12d3-a456-426614174000",
    "hash 5d41402abc4b2a76b9719d911017c592",
    "0x7fffffffffffffff",
    # numbers in arithmetic, decimals
    "3.14159265358979",
    "x + 12345678",
    "0.123456789",
    "+1.5%",
    "2024 2025 2026",
    "call 555-0199",
    # invalid checksums / rules
    "card 4111111111111112",
    "DE89370400440532013001",
    "IBAN XX89370400440532013000",
    "999-12-3456",
    "000-12-3456",
    "666-12-3456",
    "123-00-4567",
    "123-45-0000",
    "QQ123456C",
    "12345678A",
    "X1234567A",
    # email look-alikes
    "user@localhost",
    "@decorator",
    "a@b",
    "foo@bar.c0m",
    "name at example dot com",
    # IP look-alikes and uninteresting addresses
    "999.1.1.1",
    "01.02.03.04",
    "127.0.0.1",
    "0.0.0.0",
    "255.255.255.0",
    "::1",
    "std::vector<int> a::b",
    "00:1A:2B:3C:4D:5E",
    "ratio 1:2:3",
    # secret look-alikes
    "sk-this-is-not-a-real-key-at-all",
    "task-management-2024-q3-roadmap-draft-v2",
    "Bearer token",
    "the bearer of bad news is here today",
    "ghp_short",
    "AKIA1234",
    "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
    "eyJhbGciOiJIUzI1NiJ9",
]


@pytest.mark.parametrize("text", FALSE_POSITIVES)
def test_false_positive(text: str) -> None:
    assert found(text) == []


def test_values_glued_to_words_are_not_values() -> None:
    assert found("x4111111111111111") == []
    assert found("ID4111111111111111") == []
    assert found("abc536-22-8726") == []
    assert found("a192.168.1.10") == []
    assert found("mysk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t") == []


def test_raw_json_escapes_are_boundaries() -> None:
    # tool arguments and tool results are inspected as raw JSON text
    raw = '{"note": "call\\n415-555-0132\\tor\\nbob@example.com\\n4111111111111111"}'
    assert found(raw) == [
        ("phone", "415-555-0132"),
        ("email", "bob@example.com"),
        ("card", "4111111111111111"),
    ]


def test_mistyped_iban_is_not_read_as_a_phone() -> None:
    assert found("IBAN DE89 3704 0044 0532 0130 01") == []


def test_iban_followed_by_more_values() -> None:
    text = "DE89 3704 0044 0532 0130 00 / 4111 1111 1111 1111"
    assert found(text) == [
        ("iban", "DE89 3704 0044 0532 0130 00"),
        ("card", "4111 1111 1111 1111"),
    ]


def test_spans_are_sorted_and_do_not_overlap() -> None:
    text = (
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig123 "
        "+15551234567@sms.example.com 10.1.2.3 bob@example.com"
    )
    spans = detect(text)
    assert [s.type for s in spans] == ["secret", "email", "ip", "email"]
    for a, b in itertools.pairwise(spans):
        assert a.end <= b.start


def test_detect_limits_types_and_rejects_unknown() -> None:
    text = "bob@example.com 415-555-0132 4111111111111111"
    assert [s.type for s in detect(text, {"phone"})] == ["phone"]
    assert [s.type for s in detect(text, frozenset({"card", "email"}))] == ["email", "card"]
    assert detect(text, set()) == []
    with pytest.raises(ValueError, match="unknown PII types: passport"):
        detect(text, {"passport"})
    assert set(DETECTORS) == set(PII_TYPES)


def test_checksums() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert card_ok("4111111111111111") and not card_ok("4111111111111112")
    assert not card_ok("1234567812345670")  # Luhn-valid, no issuer starts with 1
    assert not card_ok("4111111111111")  # Visa prefix, Luhn-invalid at 13
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765433")
    assert not iban_ok("GB82WEST1234569876543")  # wrong length for GB


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("0123456789 -+().:/@abcXYZ_\\n\u00e9\u4e2d")),
        max_size=80,
    )
)
def test_arbitrary_text_never_breaks_a_detector(text: str) -> None:
    spans = detect(text)
    for a, b in itertools.pairwise(spans):
        assert a.end <= b.start
    for span in spans:
        assert span.value and text[span.start : span.end] == span.value
