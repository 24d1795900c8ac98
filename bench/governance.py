"""What does data governance cost per request and per streamed chunk?

    python -m bench.governance [--quick] [--out DIR]

Pure CPU, one process, no sockets: the functions the gateway calls on its hot
paths, timed one call at a time with `time.perf_counter_ns` after a warm-up.

1. PII inspection: `inspect_request` with every type (email, phone, card, iban,
   national_id, ip, secret) set to `redact`, on one request of a system
   message plus a user message of 4 KB and of 64 KB (characters of text):
   - prose: seeded English-like sentences with a few e-mail addresses, phone
     numbers, Luhn-valid card numbers, an IBAN and an IP address woven in;
   - code: a Python-like module (decorators, dicts, version strings, hex
     digests, URLs, numbers) with a config e-mail, an IP and an API key;
   - logs: access-log lines (an IPv4 and a timestamp on every line, some
     e-mails): the numeric-heavy worst case;
   - clean prose: the prose without any PII (scan only, nothing to redact).
   The time covers detection, the redacted copy of the request and the
   placeholder mapping: everything the gateway does before the request leaves.
   Aims (issue 9): 4 KB under 0.2 ms, 64 KB under 3 ms.
2. Output filter: `OutputFilter.feed` (window 64, action redact) on a streamed
   answer cut into chunks of 4-20 characters (uniform, seeded), with a few
   configured patterns, with all PII detectors, and with both. The added cost
   per chunk is the time of one `feed` call.
3. Restorer: `Restorer.feed` for an answer that quotes 6 placeholders
   (<EMAIL_1> ...) about every 200 characters, split at the same chunk
   boundaries (a placeholder often spans two chunks), and for an answer
   without any `<` (the fast path).

Each timed call includes one `perf_counter_ns` pair (its own cost, measured
and shown below the tables, is not subtracted). The garbage collector runs
as usual, so p99 includes young-generation collections like in the gateway.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.governance.detectors import PII_TYPES, detect
from gateway.governance.output_filter import OutputFilter
from gateway.governance.policy import PiiPolicy, inspect_request
from gateway.governance.redact import Restorer
from gateway.loadtest.report import to_json_bytes
from gateway.request import ChatRequest

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 9
SIZES = {"4 KB": 4 * 1024, "64 KB": 64 * 1024}
AIMS_MS = {"4 KB": 0.2, "64 KB": 3.0}
SYSTEM = "You are a helpful assistant for the customer support team. Answer briefly."
WINDOW = 64
CHUNK_CHARS = (4, 20)

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "so no will can more about said what up its out into them than some could time only new "
    "like other then do my first any these two may now people way over such our after most "
    "order account invoice delivery customer support ticket refund payment shipment address "
    "meeting schedule report quarter revenue contract renewal update request issue problem "
    "please thanks regards team manager service product release version change review "
    "monday tuesday march april office remote project budget plan note call follow details"
).split()

# A few of each kind, realistic and valid (cards pass Luhn, the IBAN its checksum).
EMAILS = ("maria.gonzalez@example.org", "j.smith+billing@acme-corp.com", "ops@datacenter.io")
PHONES = ("+1 (415) 555-0132", "+44 20 7946 0958", "(212) 555-0199", "020 7946 0018")
CARDS = ("4539 1488 0343 6467", "5555 5555 5555 4444", "4111111111111111")
IBANS = ("DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32")
IPS = ("203.0.113.42", "198.51.100.7")
SECRET = "sk-proj-4fGh7KlMn0PqRsTuVwXyZ12aBcDeFgHiJkLmNoPq"

PATTERNS = (  # a typical operator's list: a code name, a marker, an internal host
    ("codename", r"(?i)\bproject\s+(?:falcon|osprey)\b"),
    ("marker", r"(?i)\b(?:confidential|internal only)\b"),
    ("host", r"\b[a-z0-9-]+\.corp\.example\.com\b"),
)
PLACEHOLDERS = {
    "<EMAIL_1>": "maria.gonzalez@example.org",
    "<EMAIL_2>": "j.smith+billing@acme-corp.com",
    "<PHONE_1>": "+1 (415) 555-0132",
    "<CARD_1>": "4539 1488 0343 6467",
    "<IBAN_1>": "DE89 3704 0044 0532 0130 00",
    "<IP_1>": "203.0.113.42",
}


# --- text --------------------------------------------------------------------


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 20))]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), str(rng.randint(2, 9999)))  # order ids, years
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice((".", ".", ".", "?", "!"))


def _pii_sentence(rng: random.Random) -> str:
    kind = rng.choice(("email", "email", "phone", "phone", "card", "iban", "ip"))
    if kind == "email":
        return f"You can reach me at {rng.choice(EMAILS)} any time this week."
    if kind == "phone":
        return f"Please call {rng.choice(PHONES)} before noon if anything changes."
    if kind == "card":
        return f"The charge went to card {rng.choice(CARDS)} on the 14th."
    if kind == "iban":
        return f"Refunds go to IBAN {rng.choice(IBANS)} as agreed."
    return f"The request came from {rng.choice(IPS)} according to the firewall."


def _fill(size: int, piece: Callable[[int], str]) -> str:
    out: list[str] = []
    total, i = 0, 0
    while total < size:
        part = piece(i)
        out.append(part)
        total += len(part)
        i += 1
    return "".join(out)[:size]


def prose(size: int, seed: int, pii_every: int = 500) -> str:
    """Paragraphs of sentences; a PII sentence about every `pii_every` characters (0: none)."""
    rng = random.Random(seed)
    state = {"since": 0}

    def piece(_: int) -> str:
        if pii_every and state["since"] >= pii_every:
            state["since"] = 0
            text = _pii_sentence(rng)
        else:
            text = _sentence(rng)
        state["since"] += len(text)
        return text + ("\n\n" if rng.random() < 0.15 else " ")

    return _fill(size, piece)


CODE_BLOCK = '''
@dataclass(frozen=True, slots=True)
class Settings{n}:
    """Settings of worker {n}; see docs/config.md (v{major}.{minor}.{patch})."""

    host: str = "10.0.{n3}.17"
    port: int = {port}
    retries: int = {retries}
    timeout_s: float = {timeout}
    digest: str = "{digest}"
    endpoint: str = "https://api.example.com/v1/items/{n}?limit=50&offset={offset}"
    owner: str = "ops@datacenter.io"


def load_{n}(path: str, *, strict: bool = True) -> dict[str, Any]:
    # 2024-03-{day:02d}: retry on 429/503, back off 1.5x up to 30 s
    data = {{"id": {n}, "ratio": {ratio}, "tags": ["a", "b", "c"], "shape": ({dim}, {dim})}}
    if strict and data["id"] % 2 == 0:
        raise ValueError(f"bad item {{data['id']}} at offset {offset}")
    return {{**data, "checksum": hex({port} * {retries})}}
'''


def code(size: int, seed: int) -> str:
    rng = random.Random(seed)

    def piece(n: int) -> str:
        block = CODE_BLOCK.format(
            n=n,
            n3=n % 250,
            major=rng.randint(0, 3),
            minor=rng.randint(0, 20),
            patch=rng.randint(0, 50),
            port=rng.randint(1024, 65000),
            retries=rng.randint(1, 9),
            timeout=round(rng.uniform(0.5, 30), 2),
            digest="".join(rng.choice("0123456789abcdef") for _ in range(40)),
            offset=rng.randint(0, 100000),
            day=rng.randint(1, 28),
            ratio=round(rng.random(), 4),
            dim=rng.choice((64, 128, 256, 512)),
        )
        if n == 3:
            block += f'\nAPI_KEY = "{SECRET}"  # TODO: move to the vault\n'
        return block

    return _fill(size, piece)


def logs(size: int, seed: int) -> str:
    rng = random.Random(seed)
    paths = ("/v1/chat/completions", "/v1/models", "/healthz", "/admin/deployments")

    def piece(_: int) -> str:
        octets = (
            rng.randint(11, 223),
            rng.randint(0, 255),
            rng.randint(0, 255),
            rng.randint(1, 254),
        )
        ip = ".".join(map(str, octets))
        user = rng.choice(EMAILS) if rng.random() < 0.1 else "-"
        return (
            f"{ip} - {user} [14/Mar/2024:{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
            f'{rng.randint(0, 59):02d} +0000] "POST {rng.choice(paths)} HTTP/1.1" '
            f"{rng.choice((200, 200, 200, 429, 500))} {rng.randint(100, 90000)} "
            f"{rng.uniform(0.001, 9):.3f}\n"
        )

    return _fill(size, piece)


TEXTS: dict[str, Callable[[int, int], str]] = {
    "prose": prose,
    "code": code,
    "logs": logs,
    "clean prose": lambda size, seed: prose(size, seed, pii_every=0),
}


def chat_of(text: str) -> ChatRequest:
    return ChatRequest(
        model="bench",
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
        stream=True,
    )


# --- timing ------------------------------------------------------------------


def timer_overhead_ns(n: int = 20000) -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t0 = clock()
        samples.append(clock() - t0)
    return float(statistics.median(samples))


def time_calls(fn: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Nanoseconds of each of `runs` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    clock = time.perf_counter_ns
    out = []
    gc.collect()
    for _ in range(runs):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def pct(values: Sequence[float], p: float) -> float:
    data = sorted(values)
    rank = (len(data) - 1) * p / 100.0
    lo = int(rank)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (rank - lo)


def stats_ns(values: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "mean_ns": statistics.fmean(values),
        "p50_ns": pct(values, 50),
        "p99_ns": pct(values, 99),
        "max_ns": max(values),
    }


# --- 1. inspection -----------------------------------------------------------


def bench_inspection(quick: bool) -> list[dict[str, Any]]:
    policy = PiiPolicy(dict.fromkeys(PII_TYPES, "redact"))
    rows = []
    for size_name, size in SIZES.items():
        big = size > 16 * 1024
        runs = (100 if big else 1000) if quick else (1000 if big else 10000)
        for text_name, make in TEXTS.items():
            text = make(size, SEED)
            chat = chat_of(text)
            inspection = inspect_request(chat, policy)
            found = dict(sorted(inspection.counts.items()))
            ns = time_calls(lambda chat=chat: inspect_request(chat, policy), runs, runs // 10)
            s = stats_ns(ns)
            texts = (SYSTEM, text)
            types = policy.inspected
            detect_ns = time_calls(
                lambda texts=texts, types=types: [detect(t, types) for t in texts],
                max(runs // 4, 50),
                runs // 20,
            )
            rows.append(
                {
                    "size": size_name,
                    "text": text_name,
                    "chars": len(SYSTEM) + len(text),
                    "found": found,
                    "redacted": bool(inspection.redacted),
                    "aim_ms": AIMS_MS[size_name],
                    "detect_only_p50_ns": pct(detect_ns, 50),
                    **s,
                }
            )
            print(
                f"inspect {size_name} {text_name}: p50 {s['p50_ns'] / 1e6:.3f} ms",
                file=sys.stderr,
            )
    return rows


def inspection_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| prompt | text | chars | found (type: count) | runs | p50 ms | p99 ms | mean ms "
        "| MB/s (p50) | detect only p50 ms | aim ms | p50 within aim | p99 within aim |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        found = ", ".join(f"{k}: {v}" for k, v in r["found"].items()) or "none"
        p50, p99 = r["p50_ns"] / 1e6, r["p99_ns"] / 1e6
        mbs = r["chars"] / (r["p50_ns"] / 1e9) / 1e6
        lines.append(
            f"| {r['size']} | {r['text']} | {r['chars']} | {found} | {r['count']} "
            f"| {p50:.3f} | {p99:.3f} | {r['mean_ns'] / 1e6:.3f} | {mbs:.0f} "
            f"| {r['detect_only_p50_ns'] / 1e6:.3f} | {r['aim_ms']:g} "
            f"| {'yes' if p50 < r['aim_ms'] else 'no'} | {'yes' if p99 < r['aim_ms'] else 'no'} |"
        )
    return "\n".join(lines)


# --- 2./3. streaming ----------------------------------------------------------


def chunks_of(text: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        n = rng.randint(*CHUNK_CHARS)
        out.append(text[i : i + n])
        i += n
    return out


def answer_text(chars: int) -> str:
    """An answer that now and then repeats PII, a pattern hit or an internal host name."""
    rng = random.Random(SEED + 1)
    extras = (
        "As discussed, Project Falcon ships in April.",
        "This note is confidential and must not be forwarded.",
        "The build runs on ci-7.corp.example.com every night.",
    )

    def piece(i: int) -> str:
        if i % 12 == 6:
            return _pii_sentence(rng) + " "
        if i % 12 == 11:
            return rng.choice(extras) + " "
        return _sentence(rng) + " "

    return _fill(chars, piece)


def restorer_text(chars: int) -> str:
    rng = random.Random(SEED + 2)
    tokens = list(PLACEHOLDERS)
    state = {"since": 0}

    def piece(_: int) -> str:
        if state["since"] >= 200:
            state["since"] = 0
            return f"I have noted {rng.choice(tokens)} for the follow-up. "
        text = _sentence(rng) + " "
        state["since"] += len(text)
        return text

    return _fill(chars, piece)


def time_stream(
    make: Callable[[], Callable[[str], object]],
    chunks: list[str],
    streams: int,
) -> list[float]:
    """Per-chunk ns of `streams` passes over `chunks`, each with a fresh feeder."""
    clock = time.perf_counter_ns
    warm = make()
    for chunk in chunks:
        warm(chunk)
    out: list[float] = []
    gc.collect()
    for _ in range(streams):
        feed = make()
        for chunk in chunks:
            t0 = clock()
            feed(chunk)
            out.append(clock() - t0)
    return out


def bench_output_filter(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    text = answer_text(8000)
    chunks = chunks_of(text, SEED)
    streams = 5 if quick else 40
    configs: dict[str, dict[str, Any]] = {
        f"{len(PATTERNS)} patterns": {"patterns": PATTERNS},
        f"all {len(PII_TYPES)} PII detectors": {"detectors": PII_TYPES},
        f"{len(PATTERNS)} patterns + all detectors": {"patterns": PATTERNS, "detectors": PII_TYPES},
    }
    rows = []
    for name, kwargs in configs.items():

        def make(kwargs: dict[str, Any] = kwargs) -> Callable[[str], object]:
            return OutputFilter(window=WINDOW, action="redact", **kwargs).feed

        check = OutputFilter(window=WINDOW, action="redact", **kwargs)
        matched: dict[str, int] = {}
        for chunk in chunks:
            for m in check.feed(chunk).matched:
                matched[m] = matched.get(m, 0) + 1
        for m in check.flush().matched:
            matched[m] = matched.get(m, 0) + 1
        ns = time_stream(make, chunks, streams)
        s = stats_ns(ns)
        rows.append({"stage": "output filter", "config": name, "matched": matched, **s})
        print(f"output filter {name}: p50 {s['p50_ns'] / 1e3:.1f} us", file=sys.stderr)
    # Restorer: with placeholders, and the fast path without any '<'
    restore_text = restorer_text(8000)
    restore_chunks = chunks_of(restore_text, SEED + 3)
    restored = "".join(_restore_all(restore_chunks))
    expected = restore_text
    for token, value in PLACEHOLDERS.items():
        expected = expected.replace(token, value)
    if restored != expected:
        raise SystemExit("Restorer output differs from the expected restoration")
    quoted = restore_text.count("<")
    for name, chunks_ in (
        (f"6 placeholders, {quoted} quoted in {len(restore_text)} chars", restore_chunks),
        ("no '<' in the answer", chunks_of(answer_text(8000), SEED)),
    ):
        ns = time_stream(lambda: Restorer(PLACEHOLDERS).feed, chunks_, streams)
        s = stats_ns(ns)
        rows.append({"stage": "restorer", "config": name, "matched": {}, **s})
        print(f"restorer {name}: p50 {s['p50_ns'] / 1e3:.2f} us", file=sys.stderr)
    info = {
        "answer_chars": len(text),
        "chunks": len(chunks),
        "mean_chunk_chars": len(text) / len(chunks),
        "streams_per_config": streams,
        "window": WINDOW,
        "restorer_round_trip_ok": True,
    }
    return rows, info


def _restore_all(chunks: list[str]) -> list[str]:
    restorer = Restorer(PLACEHOLDERS)
    return [restorer.feed(c) for c in chunks] + [restorer.flush()]


def stream_table(rows: list[dict[str, Any]], mean_chunk: float) -> str:
    lines = [
        "| stage | config | chunks timed | matches per answer | p50 us/chunk | p99 us/chunk "
        "| mean us/chunk | max us | MB/s (mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        matched = ", ".join(f"{k}: {v}" for k, v in sorted(r["matched"].items())) or "-"
        mbs = mean_chunk / (r["mean_ns"] / 1e9) / 1e6
        lines.append(
            f"| {r['stage']} | {r['config']} | {r['count']} | {matched} "
            f"| {r['p50_ns'] / 1e3:.2f} | {r['p99_ns'] / 1e3:.2f} | {r['mean_ns'] / 1e3:.2f} "
            f"| {r['max_ns'] / 1e3:.0f} | {mbs:.1f} |"
        )
    return "\n".join(lines)


# --- main --------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.governance", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    started = time.monotonic()
    overhead = timer_overhead_ns()
    inspection = bench_inspection(args.quick)
    streaming, info = bench_output_filter(args.quick)
    took = time.monotonic() - started
    machine = (
        f"CPython {platform.python_version()}, {platform.machine()}; "
        f"perf_counter_ns pair {overhead:.0f} ns (not subtracted); {took:.0f} s"
    )
    # sanity: the prose really carries PII the detectors find
    assert detect(prose(4096, SEED)), "the prose sample has no PII"
    text = "\n".join(
        [
            "PII inspection: `inspect_request`, every type set to redact (detect + redacted "
            "copy + placeholder map), one request = system message + user message of the "
            "given size.",
            "",
            inspection_table(inspection),
            "",
            f"Output filter (window {WINDOW}, action redact) and Restorer, per `feed` call: an "
            f"{info['answer_chars']}-character answer in {info['chunks']} chunks of "
            f"{CHUNK_CHARS[0]}-{CHUNK_CHARS[1]} characters (mean {info['mean_chunk_chars']:.1f}), "
            f"{info['streams_per_config']} fresh streams per row. Patterns: "
            + ", ".join(f"`{p}`" for _, p in PATTERNS)
            + ". Restorer round trip checked against the expected text.",
            "",
            stream_table(streaming, info["mean_chunk_chars"]),
            "",
            machine,
        ]
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    out = {
        "inspection": inspection,
        "streaming": streaming,
        "streaming_info": info,
        "timer_overhead_ns": overhead,
        "python": platform.python_version(),
        "seconds": took,
    }
    (args.out / "governance.md").write_text(text + "\n")
    (args.out / "governance.json").write_bytes(to_json_bytes(out) + b"\n")
    print(f"\nwrote {args.out / 'governance.md'}, {args.out / 'governance.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
