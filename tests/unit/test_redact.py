"""Redaction round trips: placeholders out, originals back in, whatever the chunking."""

from __future__ import annotations

import copy
import itertools

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.governance import PiiPolicy, Redactor, Restorer, inspect_request
from gateway.governance.redact import PLACEHOLDER, iter_texts
from gateway.request import ChatRequest

EMAIL = "jane.doe@example.com"
EMAIL2 = "bob@example.org"
PHONE = "+1 (415) 555-0132"
CARD = "4111 1111 1111 1111"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\n-----END PRIVATE KEY-----"

POLICY = PiiPolicy({"email": "redact", "phone": "redact", "card": "redact", "secret": "redact"})


def chunks_at(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def stream(restorer: Restorer, chunks: list[str]) -> str:
    return "".join(restorer.feed(c) for c in chunks) + restorer.flush()


def test_same_value_same_placeholder_numbered_per_type() -> None:
    redactor = Redactor({"email", "phone"})
    text = f"{EMAIL} / {PHONE} / {EMAIL2} / {EMAIL}"
    assert redactor.redact_text(text) == "<EMAIL_1> / <PHONE_1> / <EMAIL_2> / <EMAIL_1>"
    assert dict(redactor.mapping) == {
        "<EMAIL_1>": EMAIL,
        "<PHONE_1>": PHONE,
        "<EMAIL_2>": EMAIL2,
    }
    assert redactor.redact_text("nothing here") == "nothing here"


def test_redactor_repr_has_counts_not_values() -> None:
    redactor = Redactor({"email"})
    redactor.redact_text(f"mail {EMAIL}")
    assert EMAIL not in repr(redactor) and EMAIL not in str(redactor)
    assert repr(redactor) == "Redactor(EMAIL=1)"


def test_placeholders_already_in_the_request_are_never_assigned() -> None:
    chat = ChatRequest(
        "m",
        [
            {"role": "user", "content": "template: Dear <EMAIL_1>, ..."},
            {"role": "user", "content": f"send it to {EMAIL}"},
        ],
    )
    inspection = inspect_request(chat, POLICY)
    assert inspection.redactor is not None
    assert inspection.request.messages[1]["content"] == "send it to <EMAIL_2>"
    restored = inspection.redactor.restore("I wrote Dear <EMAIL_1> to <EMAIL_2>.")
    assert restored == f"I wrote Dear <EMAIL_1> to {EMAIL}."


def test_restorer_holds_a_split_placeholder() -> None:
    restorer = Restorer({"<EMAIL_1>": EMAIL})
    assert restorer.feed("Hello <EMA") == "Hello "
    assert restorer.feed("IL_1> is") == f"{EMAIL} is"
    assert restorer.feed(" fine <") == " fine "
    assert restorer.feed("b>bold") == "<b>bold"
    assert restorer.feed(" <EMAIL_") == " "
    assert restorer.flush() == "<EMAIL_"
    assert restorer.flush() == ""


def test_restorer_only_restores_exact_placeholders() -> None:
    restorer = Restorer({"<EMAIL_1>": EMAIL, "<PHONE_1>": PHONE})
    altered = "<email_1> EMAIL_1 <EMAIL 1> <EMAIL_1 > <EMAIL_12> <EMAIL_3> <<EMAIL_1>>"
    expected = f"<email_1> EMAIL_1 <EMAIL 1> <EMAIL_1 > <EMAIL_12> <EMAIL_3> <{EMAIL}>"
    assert stream(restorer, list(altered)) == expected


def test_restorer_without_placeholders_passes_text_through() -> None:
    restorer = Restorer({})
    assert restorer.feed("a < b and <EMAIL_1>") == "a < b and <EMAIL_1>"
    assert restorer.flush() == ""


def test_json_string_restorer_escapes_originals() -> None:
    mapping = {"<SECRET_1>": KEY, "<EMAIL_1>": 'a"b@example.com'}
    args = '{"key": "<SECRET_1>", "to": "<EMAIL_1>"}'
    restored = stream(Restorer(mapping, json_string=True), list(args))
    assert orjson.loads(restored) == {"key": KEY, "to": 'a"b@example.com'}


def _conversation() -> ChatRequest:
    return ChatRequest(
        "m",
        [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": f"I am {EMAIL}, call {PHONE}."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"Charge {CARD}; cc {EMAIL2} and {EMAIL}."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "send",
                            "arguments": orjson.dumps({"to": EMAIL2, "key": KEY}).decode(),
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": f'{{"sent_to": "{EMAIL2}"}}'},
        ],
        stream=True,
        params={"temperature": 0.2},
    )


def _upstream_answer(request: ChatRequest) -> str:
    """A simulated upstream that echoes every placeholder it was sent."""
    tokens: list[str] = []
    for _, text in iter_texts(request.messages):
        tokens += PLACEHOLDER.findall(text)
    return "Sure: " + ", ".join(f"[{t}]" for t in tokens) + " <done>"


def _expected_answer(request: ChatRequest, mapping: dict[str, str]) -> str:
    tokens: list[str] = []
    for _, text in iter_texts(request.messages):
        tokens += PLACEHOLDER.findall(text)
    return "Sure: " + ", ".join(f"[{mapping[t]}]" for t in tokens) + " <done>"


def test_redacted_request_is_a_copy_and_carries_no_values() -> None:
    chat = _conversation()
    before = copy.deepcopy(chat.messages)
    inspection = inspect_request(chat, POLICY)
    sent = inspection.request
    assert chat.messages == before  # the input is not mutated
    assert sent is not chat and sent.params is chat.params and sent.stream
    assert sent.messages[0] is chat.messages[0]  # unchanged messages are shared
    assert sent.messages[2]["content"][1] is chat.messages[2]["content"][1]  # image untouched
    body = orjson.dumps(sent.messages).decode()
    for value in (EMAIL, EMAIL2, PHONE, CARD, "MIIEvQIBADANBgkq"):
        assert value not in body
    assert sent.messages[1]["content"] == "I am <EMAIL_1>, call <PHONE_1>."
    assert sent.messages[2]["content"][0]["text"] == "Charge <CARD_1>; cc <EMAIL_2> and <EMAIL_1>."
    args = orjson.loads(sent.messages[3]["tool_calls"][0]["function"]["arguments"])
    assert args == {"to": "<EMAIL_2>", "key": "<SECRET_1>"}
    assert sent.messages[4]["content"] == '{"sent_to": "<EMAIL_2>"}'
    assert inspection.counts == {"email": 5, "phone": 1, "card": 1, "secret": 1}


def test_round_trip_split_at_every_boundary() -> None:
    chat = _conversation()
    inspection = inspect_request(chat, POLICY)
    assert inspection.redactor is not None
    mapping = dict(inspection.redactor.mapping)
    answer = _upstream_answer(inspection.request)
    expected = _expected_answer(inspection.request, mapping)
    assert EMAIL in expected and "MIIEvQIBADANBgkq" in expected
    for a, b in itertools.combinations(range(len(answer) + 1), 2):
        restorer = inspection.redactor.restorer()
        assert stream(restorer, [answer[:a], answer[a:b], answer[b:]]) == expected
    assert stream(inspection.redactor.restorer(), list(answer)) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_round_trip_arbitrary_splits(cuts: list[int]) -> None:
    chat = _conversation()
    inspection = inspect_request(chat, POLICY)
    assert inspection.redactor is not None
    answer = _upstream_answer(inspection.request)
    expected = _expected_answer(inspection.request, dict(inspection.redactor.mapping))
    restorer = inspection.redactor.restorer()
    assert stream(restorer, chunks_at(answer, cuts)) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from([EMAIL, EMAIL2, PHONE, CARD]),
            st.text(alphabet=st.sampled_from(list("ab <>_ELIM1")), max_size=6),
        ),
        max_size=12,
    ),
    st.lists(st.integers(min_value=0, max_value=500), max_size=20),
)
def test_restore_inverts_redact_for_any_text(pieces: list[str], cuts: list[int]) -> None:
    """Whatever surrounds the values (even placeholder-like debris), restore(redact(x)) == x."""
    original = " ".join(pieces)
    chat = ChatRequest("m", [{"role": "user", "content": original}])
    inspection = inspect_request(chat, POLICY)
    if inspection.redactor is None:
        return
    redacted = inspection.request.messages[0]["content"]
    assert stream(inspection.redactor.restorer(), chunks_at(redacted, cuts)) == original


def test_tool_call_argument_fragments_restore_per_call() -> None:
    chat = _conversation()
    inspection = inspect_request(chat, POLICY)
    assert inspection.redactor is not None
    fragments = ['{"to": "<EM', 'AIL_2>", "k', 'ey": "<SECRET', '_1>"}']
    restorer = inspection.redactor.restorer(json_string=True)
    args = stream(restorer, fragments)
    assert orjson.loads(args) == {"to": EMAIL2, "key": KEY}


def test_redact_request_without_inspection() -> None:
    chat = _conversation()
    redactor = Redactor({"email"})
    sent = redactor.redact_request(chat)
    assert sent.messages[1]["content"] == f"I am <EMAIL_1>, call {PHONE}."
    assert redactor.redact_request(ChatRequest("m", [{"role": "user", "content": "hi"}])).messages
