"""`race-gateway models`: the configured deployments' effective facts, and `--all`."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import yaml

from gateway.cli import main as cli_main
from gateway.list_models import main as models_main

TODAY = dt.date(2026, 12, 6)
CONFIG = {
    "providers": {
        "oai": {"kind": "openai", "base_url": "https://api.openai.com/v1"},
        "local": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:8000/v1"},
    },
    "deployments": {
        "mini": {"provider": "oai", "model": "gpt-4o-mini", "price": {"output": 0.9}},
        "mine": {"provider": "local", "model": "my-ft"},
    },
    "catalogue": {"files": ["private.yaml"]},
}
PRIVATE = {
    "models": {
        "acme/my-ft": {
            "context_window": 32000,
            "capabilities": {"vision": False, "tools": True},
            "shutdown_date": "2026-12-20",
        }
    }
}


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    (tmp_path / "private.yaml").write_text(yaml.safe_dump(PRIVATE))
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    out, err = io.StringIO(), io.StringIO()
    code = models_main(
        ["--config", str(tmp_path / "gateway.yaml"), *args], out=out, err=err, today=TODAY
    )
    return code, out.getvalue(), err.getvalue()


def test_table_lists_effective_facts_with_their_origin_and_status(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path)
    assert code == 0
    header, mini, mine, legend = out.splitlines()
    assert header.split()[:3] == ["DEPLOYMENT", "MODEL", "FROM"]
    assert mini.split()[:8] == [
        "mini",
        "oai/gpt-4o-mini",
        "openai/gpt-4o-mini",
        "+config",
        "128000",
        "16384",
        "0.15/0.9",
        "0.075",
    ]
    assert mini.endswith("deprecated (2027-01-14, 39 d)")
    assert mine.split()[:5] == ["mine", "local/my-ft", "acme/my-ft", "32000", "-"]
    assert "tools" in mine and "vision" not in mine.replace("vision?", "")
    assert mine.endswith("shutdown_soon (2026-12-20, 14 d)")
    assert legend.startswith("prices: USD per million tokens")


def test_json_gives_every_fact_and_where_it_came_from(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, "--json")
    assert code == 0
    data = json.loads(out)
    mini: dict[str, Any] = data["deployments"][0]
    assert mini["catalogue"] == "openai/gpt-4o-mini" and mini["overridden"] == ["price.output"]
    assert mini["price"]["output"] == 0.9 and mini["price"]["batch_input"] == 0.075
    assert mini["sources"]["price.input"].startswith("litellm ")
    assert mini["lifecycle"] == {
        "state": "deprecated",
        "shutdown_date": "2027-01-14",
        "days_left": 39,
        "successor": "gpt-6-luna",
    }
    assert data["deployments"][1]["capabilities"] == {"vision": False, "tools": True}


def test_all_lists_the_catalogue_with_private_entries(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, "--all", "--json", "--provider", "acme")
    assert code == 0
    data = json.loads(out)
    assert [m["id"] for m in data["models"]] == ["acme/my-ft"]
    assert data["models"][0]["private"] is True
    assert data["sources"][0]["package"] == "litellm"
    code, out, _ = run(tmp_path, "--all", "--provider", "anthropic")
    lines = out.splitlines()
    assert lines[0].split()[0] == "MODEL" and all(x.startswith("anthropic/") for x in lines[1:-1])
    assert "sources: litellm" in lines[-1]


def test_without_a_config_it_lists_the_shipped_catalogue(capsys: Any) -> None:
    assert cli_main(["models", "--all", "--provider", "deepseek", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["models"] and all(m["provider"] == "deepseek" for m in data["models"])


def test_an_invalid_config_is_reported(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text("deployments: {x: {provider: nope, model: m}}\n")
    err = io.StringIO()
    code = models_main(["--config", str(tmp_path / "gateway.yaml")], out=io.StringIO(), err=err)
    assert code == 1 and "deployments.x.provider: unknown provider 'nope'" in err.getvalue()
