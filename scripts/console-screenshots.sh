#!/usr/bin/env bash
# Refresh the console screenshots that README shows (docs/console/*.png): the browser test
# saves one per page; the load is spread over 30 s here so that the Live chart has a shape.
# Needs Chromium at /usr/bin/chromium (the test installs Debian's package when it can).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONSOLE_SCREENSHOTS="${CONSOLE_SCREENSHOTS:-docs/console}"
export CONSOLE_LOAD_SPREAD_S="${CONSOLE_LOAD_SPREAD_S:-30}"
exec "${PYTHON:-.venv/bin/python}" -m pytest -q -p no:cacheprovider tests/browser/test_console.py
