#!/usr/bin/env python3
"""Regenerate gateway/catalogue/models.json from LiteLLM's model data at a pinned version.

    .venv/bin/python scripts/refresh_catalogue.py [--version X.Y.Z] [--date YYYY-MM-DD]

Downloads the litellm wheel from PyPI with pip (no dependencies, nothing installed) into
a temporary directory, reads `litellm/model_prices_and_context_window_backup.json` and
the package's licence from it, converts and trims the data
(`gateway.catalogue.convert`), and writes `gateway/catalogue/models.json` and
`gateway/catalogue/LICENSE-litellm.txt`. Commit those two files, never the wheel.
Bump LITELLM_VERSION to refresh; review the diff of models.json like code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.catalogue.convert import convert  # noqa: E402

LITELLM_VERSION = "1.110.2"
DATA_PATH = "litellm/model_prices_and_context_window_backup.json"
OUT_DIR = ROOT / "gateway" / "catalogue"


def download_wheel(version: str, into: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"litellm=={version}",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            "-d",
            str(into),
        ],
        check=True,
    )
    wheels = sorted(into.glob(f"litellm-{version}-*.whl"))
    if not wheels:
        raise SystemExit(f"pip downloaded no litellm {version} wheel into {into}")
    return wheels[0]


def read_wheel(wheel: Path, version: str) -> tuple[dict, str]:
    with zipfile.ZipFile(wheel) as zf:
        data = json.loads(zf.read(DATA_PATH))
        names = [n for n in zf.namelist() if n.startswith(f"litellm-{version}.dist-info/")]
        licence = next((n for n in names if n.rsplit("/", 1)[-1].startswith("LICENSE")), None)
        if licence is None:
            raise SystemExit(f"no LICENSE in {wheel.name}")
        return data, zf.read(licence).decode("utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=LITELLM_VERSION, help="litellm version on PyPI")
    parser.add_argument("--date", help="the generation date to record (default today, UTC)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args()
    generated = dt.date.fromisoformat(args.date) if args.date else dt.datetime.now(dt.UTC).date()
    with tempfile.TemporaryDirectory(prefix="litellm-") as tmp:
        wheel = download_wheel(args.version, Path(tmp))
        data, licence = read_wheel(wheel, args.version)
    catalogue = convert(
        data, package="litellm", version=args.version, path=DATA_PATH, generated=generated
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "models.json").write_text(
        json.dumps(catalogue, indent=1, sort_keys=False, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    notice = (
        f"The model data in models.json is derived from LiteLLM {args.version}\n"
        f"({DATA_PATH}, https://github.com/BerriAI/litellm), used under the MIT licence:\n\n"
    )
    (args.out / "LICENSE-litellm.txt").write_text(notice + licence, encoding="utf-8")
    print(f"wrote {len(catalogue['models'])} models from litellm {args.version} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
