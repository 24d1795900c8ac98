"""The console's static files: each one is served, listed as package data (so an installed
wheel has them), and references only files that are served."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from gateway.server.console_ui import ASSETS, load_files

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "gateway" / "server" / "ui"


def test_every_ui_file_is_package_data_and_served() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["gateway.server"]
    files = sorted(p.name for p in UI.iterdir())
    for name in files:
        assert any(fnmatch(f"ui/{name}", pattern) for pattern in patterns), name
    assert files == sorted(["index.html", *ASSETS])
    assert set(load_files()) == set(files)


def test_the_page_loads_only_served_assets_and_no_inline_code() -> None:
    html = (UI / "index.html").read_text()
    referenced = re.findall(r'(?:src|href)="ui/assets/([^"]+)"', html)
    assert sorted(referenced) == sorted(ASSETS)
    assert "<script>" not in html and " style=" not in html and "onclick" not in html
    script = (UI / "console.js").read_text() + (UI / "charts.js").read_text()
    assert "innerHTML" not in script and "eval(" not in script
    assert "localStorage" not in script  # the key lives in sessionStorage only
