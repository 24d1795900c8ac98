"""Regress cells, baseline comparison flags, baseline updates and storage, and the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.regress.baseline import Baseline, BaselineError, FileBaselineStore
from gateway.regress.charts import write_charts
from gateway.regress.checks import Output, output_hash, run_checks
from gateway.regress.compare import (
    Cell,
    Thresholds,
    build_cell,
    compare_cell,
    entry_of,
    update_baseline,
    version_changes,
)
from gateway.regress.report import RegressResult, to_json, to_markdown
from gateway.regress.runner import Progress, RunOptions, RunRecord
from gateway.regress.suite import PromptSpec, parse_suite

NOW = "2025-01-01T00:00:00Z"
PROMPT: PromptSpec = parse_suite(
    {"prompts": [{"id": "capital", "prompt": "hi", "checks": [{"contains": "Paris"}]}]}
).prompts[0]
ANSWER = "The capital of France is Paris."


def run(
    repeat: int = 0,
    text: str = ANSWER,
    ttft_ms: float = 100.0,
    cost: float = 0.001,
    version: str = "v1",
    deployment: str = "a",
    error: str | None = None,
) -> RunRecord:
    record = RunRecord("capital", "a", repeat, deployment=deployment, model_version=version)
    if error is not None:
        record.error = error
        return record
    output = Output(text, ttft_ms=ttft_ms, completion_tokens=8)
    record.ttft_ms, record.cost_usd = ttft_ms, cost
    record.prompt_tokens, record.completion_tokens = 10, 8
    record.output, record.output_hash = output, output_hash(output)
    record.checks = run_checks(PROMPT.checks, output)
    return record


def cell(*runs: RunRecord) -> Cell:
    return build_cell(PROMPT, "a", list(runs))


def flags(c: Cell, baseline: Cell | None, th: Thresholds = Thresholds(), **kw: Any) -> list[str]:
    entry = entry_of(baseline, NOW) if baseline is not None else None
    compare_cell(c, entry, th, frozenset(kw.get("ignore", ())))
    return [f.kind for f in c.regressions]


def test_cell_aggregates_repeats() -> None:
    c = cell(run(0, ttft_ms=100), run(1, ttft_ms=300, cost=0.003), run(2, ttft_ms=200))
    assert c.passed and c.deployment == "a" and c.model_version == "v1"
    assert c.ttft_p50_ms == 200 and c.ttft_p95_ms == pytest.approx(290)
    assert c.cost_usd == pytest.approx(0.005 / 3)
    assert c.output_sample == ANSWER and c.output_hash == output_hash(Output(ANSWER))
    assert c.checks[0].passes == 3
    failing = cell(run(0), run(1, text="Lyon"), run(2, error="503 overloaded"))
    assert not failing.passed
    assert (failing.checks[0].passes, failing.checks[0].runs) == (1, 2)
    assert failing.errors == ["run 3: 503 overloaded"]


def test_no_baseline_flags_only_failures() -> None:
    assert flags(cell(run()), None) == []
    assert flags(cell(run(text="Lyon")), None) == ["check_failed"]
    assert flags(cell(run(error="boom")), None) == ["error"]


def test_check_regression_and_drift() -> None:
    base = cell(run())
    assert flags(cell(run()), base) == []
    changed = cell(run(text="Lyon is in France."))
    assert flags(changed, base) == ["check_regressed", "drift"]
    assert changed.flags[0].message.startswith("contains passed in the baseline, now fails (1/1)")
    assert changed.drift is not None and changed.drift > 0.3
    # drift takes the closest of the repeats
    mixed = cell(run(0, text="Lyon is in France. Paris"), run(1, text=ANSWER))
    compare_cell(mixed, entry_of(base, NOW), Thresholds(), frozenset())
    assert mixed.drift == 0.0
    assert flags(cell(run(text="Paris")), base, Thresholds(drift=0.9)) == []


def test_ttft_needs_relative_and_absolute_increase() -> None:
    base = cell(run(ttft_ms=100))
    assert flags(cell(run(ttft_ms=119)), base) == []
    assert flags(cell(run(ttft_ms=160)), base) == ["ttft_p50", "ttft_p95"]
    small = cell(run(ttft_ms=10))
    assert flags(cell(run(ttft_ms=40)), small) == []  # +300 % but only +30 ms
    assert flags(cell(run(ttft_ms=40)), small, Thresholds(ttft_min_ms=0)) == [
        "ttft_p50",
        "ttft_p95",
    ]
    # p95 alone: one slow repeat of three
    base3 = cell(run(0, ttft_ms=100), run(1, ttft_ms=100), run(2, ttft_ms=100))
    tail = cell(run(0, ttft_ms=100), run(1, ttft_ms=100), run(2, ttft_ms=400))
    assert flags(tail, base3) == ["ttft_p95"]
    assert tail.flags[0].message == "TTFT p95 100 -> 370 ms (+270%)"


def test_cost_and_model_version() -> None:
    base = cell(run(cost=0.001))
    assert flags(cell(run(cost=0.0012)), base) == []
    assert flags(cell(run(cost=0.0013)), base) == ["cost"]
    assert flags(cell(run(cost=0.0)), cell(run(cost=0.0))) == []
    assert flags(cell(run(cost=0.001)), cell(run(cost=0.0))) == ["cost"]
    new = cell(run(version="v2"))
    assert flags(new, base) == ["model_version"]
    assert new.flags[0].message == "a: v1 -> v2"
    # another deployment answered (a route's winner changed): not a version change
    assert flags(cell(run(version="v2", deployment="b")), base) == []


def test_ignored_flags_are_kept_but_do_not_count() -> None:
    c = cell(run(version="v2", ttft_ms=500))
    assert flags(c, cell(run()), ignore=["model_version"]) == ["ttft_p50", "ttft_p95"]
    assert [f.kind for f in c.flags if f.ignored] == ["model_version"]


def test_update_baseline_keeps_last_passing_results() -> None:
    good, bad = cell(run()), cell(run(text="Lyon"))
    baseline, written = update_baseline(None, [good], accept=False, now=NOW)
    assert written == 1 and baseline.get("a", "capital") is not None
    assert baseline.version_of("a") == "v1" and baseline.updated_at == NOW
    # a failing cell never overwrites, even when accepting
    _, written = update_baseline(baseline, [bad], accept=True, now=NOW)
    assert written == 0
    entry = baseline.get("a", "capital")
    assert entry is not None and entry.output_sample == ANSWER
    # a passing cell replaces its entry only when accepted
    slower = cell(run(ttft_ms=900, version="v2"))
    assert update_baseline(baseline, [slower], accept=False, now=NOW)[1] == 0
    assert update_baseline(baseline, [slower], accept=True, now="later")[1] == 1
    entry = baseline.get("a", "capital")
    assert entry is not None and entry.ttft_p50_ms == 900 and entry.model_version == "v2"
    history = baseline.deployments["a"]["history"]
    assert [h["model_version"] for h in history] == ["v1", "v2"]


def test_version_changes_per_deployment() -> None:
    baseline, _ = update_baseline(None, [cell(run())], accept=False, now=NOW)
    assert version_changes(baseline, [cell(run())]) == []
    (change,) = version_changes(baseline, [cell(run(version="v9"))])
    assert (change.deployment, change.baseline, change.current) == ("a", "v1", "v9")
    assert version_changes(None, [cell(run())]) == []


async def test_file_store_round_trip(tmp_path: Path) -> None:
    store = FileBaselineStore(tmp_path / "sub" / "baseline.json")
    assert await store.load() is None
    baseline, _ = update_baseline(None, [cell(run())], accept=False, now=NOW)
    await store.save(baseline)
    loaded = await store.load()
    assert loaded is not None
    assert loaded.get("a", "capital") == baseline.get("a", "capital")
    assert loaded.deployments == baseline.deployments
    doc = orjson.loads(store.path.read_bytes())
    assert doc["format"] == "race-gateway-regress-baseline/1"
    assert list(doc["results"]["a"]["capital"]) == list(entry_of(cell(run()), NOW).__slots__)
    store.path.write_text("{not json")
    with pytest.raises(BaselineError, match="not valid JSON"):
        await store.load()
    store.path.write_text('{"results": {}}')
    with pytest.raises(BaselineError, match="not a regress baseline"):
        await store.load()
    bad = {"format": "race-gateway-regress-baseline/1", "results": {"a": {"p": {"cost_usd": "x"}}}}
    store.path.write_bytes(orjson.dumps(bad))
    with pytest.raises(BaselineError, match="malformed results"):
        await store.load()
    assert Baseline.from_json(Baseline().to_json(), "x").results == {}


def result(cells: list[Cell], exit_code: int) -> RegressResult:
    return RegressResult(
        suite="suite.yaml",
        config="gw.yaml",
        started_at=NOW,
        duration_s=1.5,
        options=RunOptions(),
        thresholds=Thresholds(),
        ignore=frozenset(),
        prompts=["capital"],
        targets=["a", "b|c"],
        cells=cells,
        baseline_location="regress-baseline.json",
        baseline_existed=True,
        exit_code=exit_code,
    )


def test_reports(tmp_path: Path) -> None:
    base = cell(run())
    now = cell(run(text="Lyon", ttft_ms=400))
    compare_cell(now, entry_of(base, NOW), Thresholds(), frozenset())
    other = build_cell(PROMPT, "b|c", [run()])
    compare_cell(other, None, Thresholds(), frozenset())
    report = to_json(result([now, other], 1))
    assert report["status"] == "regressions"
    assert report["summary"]["flags"] == {
        "check_regressed": 1,
        "drift": 1,
        "ttft_p50": 1,
        "ttft_p95": 1,
    }
    (first, second) = report["matrix"]
    assert first["baseline"]["ttft_p50_ms"] == 100.0 and first["ttft_p50_ms"] == 400.0
    assert second["baseline"] is None and second["passed"]
    orjson.dumps(report)  # serializable as is
    text = to_markdown(report, [tmp_path / "charts" / "ttft.png"], str(tmp_path))
    assert "**❌ regressions found** (exit 1)" in text
    assert "| prompt | a | b\\|c |" in text  # pipes in names are escaped
    assert (
        "| capital | ❌ 400 ms · $0.001000 · check_regressed, drift, ttft_p50, ttft_p95 |" in text
    )
    assert "✅ 100 ms · $0.001000 · new |" in text
    assert "| capital | a | ttft_p50 | TTFT p50 100 -> 400 ms (+300%) |" in text
    assert "![ttft](charts/ttft.png)" in text
    paths = write_charts(report, tmp_path / "charts")
    assert [p.name for p in paths] == ["ttft.png", "cost.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    assert write_charts(to_json(result([], 2)), tmp_path / "none") == []


def test_progress_bar_only_when_enabled(capsys: pytest.CaptureFixture[str]) -> None:
    quiet = Progress(2, enabled=False)
    quiet.tick(run())
    quiet.close()
    assert capsys.readouterr().err == ""
    bar = Progress(2, enabled=True, width=10)
    bar.tick(run())
    bar.tick(run(text="Lyon"))
    bar.close()
    err = capsys.readouterr().err
    assert "\r[#####     ] 1/2 runs  0 failed" in err
    assert "\r[##########] 2/2 runs  1 failed" in err and err.endswith("\n")
