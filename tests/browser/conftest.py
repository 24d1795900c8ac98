"""A real Chromium for browser tests: Debian's `chromium` package, driven by Playwright.

When /usr/bin/chromium is missing, the setup installs it with apt-get (we may be root in
CI containers); the tests are skipped, saying why, only where that cannot be done. Playwright
is only the driver here: `playwright install` (which downloads its own browsers) is never run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
APT_TIMEOUT_S = 600


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=300", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=APT_TIMEOUT_S,
        check=False,
    )


def _install_chromium() -> str | None:
    """Install Debian's chromium; None when done, else why it could not be."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available on this system"
    if os.geteuid() != 0:
        return "apt-get needs root and this test run is not root"
    try:
        result = _apt_get("install", "-y", "chromium")
        if result.returncode != 0:  # a fresh container may have no package lists yet
            _apt_get("update")
            result = _apt_get("install", "-y", "chromium")
    except subprocess.TimeoutExpired:
        return f"apt-get did not finish within {APT_TIMEOUT_S} s"
    if result.returncode != 0 or not CHROMIUM.exists():
        tail = " ".join((result.stderr or result.stdout).split()[-30:])
        return f"apt-get install chromium failed: {tail}"
    return None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        reason = _install_chromium()
        if reason is not None:
            pytest.skip(
                f"browser tests need Chromium at {CHROMIUM} (Debian's `chromium` package) "
                f"and it could not be installed: {reason}"
            )
    return str(CHROMIUM)


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async_api = pytest.importorskip(
        "playwright.async_api",
        reason="Playwright for Python drives the browser: pip install -e '.[dev]'",
    )
    async with async_api.async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            await instance.close()
