"""The console in a real Chromium: sign in, open every page over live data from a short
simulated load, and check that the charts and tables hold the numbers the admin API
reports. Screenshots of each page go to $CONSOLE_SCREENSHOTS (default: the test's tmp_path);
scripts/console-screenshots.sh refreshes the ones in docs/console/ this way.

Pages poll the API, so each check reads the API and the page until they agree (or fails
after `SETTLE_S` showing both): the assertion is that the page shows what the API says.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from tests.stack import Stack, stack

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = pytest.mark.timeout(900)  # the first browser test may install Chromium

ADMIN = "console-admin-key"
KEYS = ["k-team-a", "k-team-b"]
SERVERS = {
    "sim": {
        "kind": "openai",
        "models": {
            "fast": {"ttft_p50_ms": 20, "ttft_p95_ms": 40, "itl_ms": 0, "tokens": 8},
            "steady": {"ttft_ms": 60, "itl_ms": 0, "tokens": 8, "model_version": "steady-2026"},
            "broken": {"ttft_ms": 5, "tokens": 8, "error_rate_500": 1.0},
        },
    }
}
DEPLOYMENTS = {
    "fast": {"price": {"input": 0.15, "output": 0.6}},
    "steady": {"price": {"input": 3.0, "output": 15.0}, "rpm": 1000, "context_window": 128000},
    "broken": {"price": {"input": 1.0, "output": 1.0}},
}
ROUTES = {
    "chat": {"strategy": "race", "k": 2, "deployments": ["fast", "steady"]},
    "solo": {"strategy": "fallback", "deployments": ["steady"]},
    "doomed": {"strategy": "fallback", "deployments": ["broken"]},
}
LATENCY = {"regions": ["eu", "us", "apac"], "default_region": "eu", "min_samples": 5}
SETTLE_S = 15.0


@pytest.fixture
async def gateway() -> AsyncIterator[Stack]:
    async with stack(
        SERVERS,
        ROUTES,
        DEPLOYMENTS,
        admin={"key": ADMIN},
        auth={"keys": KEYS},
        latency=LATENCY,
    ) as s:
        await simulate_load(s)
        yield s


def default_load() -> list[tuple[str, str, str]]:
    """59 requests (key, route, region): races in two regions, a second route, failures,
    refused keys."""
    jobs = [(KEYS[i % 2], "chat", "eu" if i % 3 else "us") for i in range(40)]
    jobs += [(KEYS[0], "solo", "eu")] * 10 + [(KEYS[1], "doomed", "us")] * 6
    jobs += [("not-a-key", "chat", "eu")] * 3
    return jobs


async def simulate_load(s: Stack, jobs: list[tuple[str, str, str]] | None = None) -> None:
    jobs = default_load() if jobs is None else jobs
    limit = asyncio.Semaphore(6)
    # scripts/console-screenshots.sh spreads the load over some seconds (a chart with a shape)
    spread_s = float(os.environ.get("CONSOLE_LOAD_SPREAD_S") or 0)
    async with aiohttp.ClientSession() as http:

        async def one(key: str, route: str, region: str, start_s: float) -> None:
            await asyncio.sleep(start_s)
            body = {"model": route, "messages": [{"role": "user", "content": "hello"}]}
            headers = {"authorization": f"Bearer {key}", "x-gateway-region": region}
            async with (
                limit,
                http.post(f"{s.url}/v1/chat/completions", json=body, headers=headers) as resp,
            ):
                await resp.read()

        random.Random(5).shuffle(jobs)
        await asyncio.gather(*(one(*job, i * spread_s / len(jobs)) for i, job in enumerate(jobs)))


async def api(s: Stack, path: str) -> Any:
    async with aiohttp.ClientSession() as http:
        async with http.get(s.url + path, headers={"authorization": f"Bearer {ADMIN}"}) as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def agree(
    read_page: Callable[[], Awaitable[Any]], read_api: Callable[[], Awaitable[Any]]
) -> tuple[Any, Any]:
    """Read both until they are equal; fail with both when they never are."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        expected = await read_api()
        shown = await read_page()
        if shown == expected or time.monotonic() > deadline:
            assert shown == expected
            return shown, expected
        await asyncio.sleep(0.2)


def screenshots_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def data_values(page: Page, selector: str, *fields: str) -> list[dict[str, str]]:
    result: list[dict[str, str]] = await page.eval_on_selector_all(
        selector,
        "(nodes, fields) => nodes.map(n => Object.fromEntries(fields.map(f => [f, n.dataset[f]])))",
        list(fields),
    )
    return result


def num(text: str | None) -> float | None:
    return None if text in (None, "") else float(text)  # type: ignore[arg-type]


async def sign_in(page: Page, url: str) -> list[str]:
    """Sign in through the form; returns every URL the page requested."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    await page.goto(f"{url}/ui")
    await page.fill("#admin-key", "a-wrong-key")
    await page.press("#admin-key", "Enter")
    await page.wait_for_selector("#login-error:has-text('refused')")
    assert await page.is_hidden("#nav")
    await page.fill("#admin-key", ADMIN)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#page-live:not([hidden])")
    return urls


async def test_console_pages_show_what_the_admin_api_reports(
    browser: Browser, gateway: Stack, tmp_path: Path
) -> None:
    shots = screenshots_dir(tmp_path)
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    urls = await sign_in(page, gateway.url)
    assert await page.evaluate("sessionStorage.getItem('raceGatewayAdminKey')") == ADMIN
    assert await page.evaluate("document.activeElement.id") == "live-title"

    # -- Live ------------------------------------------------------------------------------
    async def live_api() -> dict[str, Any]:
        d = await api(gateway, "/admin/live?window=60")
        return {
            "tiles": [d["totals"][k] for k in ("requests", "errors", "rejected")]
            + [d["totals"]["cost_usd"], d["totals"]["wasted_usd"], d["rps"]],
            "bars": sum(s["requests"] for s in d["series"]),
            "bad": sum(s["errors"] + s["rejected"] for s in d["series"]),
            "wins": {dep: w["share"] for dep, w in d["wins"].items()},
            "routes": {
                r: [v["requests"], v["ttft_samples"], v["ttft_p50_ms"], v["ttft_p95_ms"]]
                for r, v in d["routes"].items()
            },
        }

    async def live_page() -> dict[str, Any]:
        tiles = ["requests", "errors", "rejected", "cost", "waste", "rps"]
        values = [await page.get_attribute(f"#live-{t}", "data-value") for t in tiles]
        bars = await data_values(page, "#chart-rps rect.bar-ok", "value", "bad")
        wins = await data_values(page, "#chart-wins rect", "label", "share")
        rows = await data_values(page, "#live-routes tbody tr", "route")
        routes = {}
        for row in rows:
            cells = await data_values(
                page, f"#live-routes tr[data-route='{row['route']}'] td", "value"
            )
            routes[row["route"]] = [num(c["value"]) for c in cells]
        return {
            "tiles": [num(v) for v in values],
            "bars": sum(int(b["value"]) for b in bars),
            "bad": sum(int(b["bad"]) for b in bars),
            "wins": {w["label"]: float(w["share"]) for w in wins},
            "routes": routes,
        }

    shown, _ = await agree(live_page, live_api)
    assert shown["tiles"][:3] == [59, 6, 3]  # 59 requests: 6 failed, 3 refused keys
    assert set(shown["routes"]) == {"chat", "solo", "doomed"}
    assert sum(shown["wins"].values()) == pytest.approx(1.0, abs=1e-3)
    assert len(await page.query_selector_all("#chart-rps rect.bar-ok")) == 60
    # it updates live: one more request shows up without a reload
    await simulate_load(gateway, [(KEYS[0], "chat", "eu")])
    # (no wait_for_function: the console's CSP forbids the eval it uses)

    async def sixty() -> str:
        return "60"

    await agree(lambda: page.get_attribute("#live-requests", "data-value"), sixty)
    await page.screenshot(path=str(shots / "console-live.png"))

    # -- Latency map: reached by keyboard ----------------------------------------------------
    await page.focus("#nav a[href='#latency']")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#page-latency:not([hidden]) table.heat")
    assert await page.evaluate("document.activeElement.id") == "latency-title"
    await page.select_option("#latency-a", "fast")
    await page.select_option("#latency-b", "steady")
    maps = {}
    for quantile in ("p50_ms", "p90_ms"):
        await page.check(f"input[name='latency-q'][value='{quantile}']")

        async def map_api(q: str = quantile) -> list[tuple[Any, ...]]:
            cells = []
            for dep in ("fast", "steady"):
                d = (await api(gateway, f"/admin/profiles?deployment={dep}"))["deployments"][dep]
                for region, rows in d.items():
                    for row in rows:
                        detail = row["by_quantile"][q]
                        cells.append(
                            (dep, region, row["hour"], row[q], detail["samples"], detail["level"])
                        )
            return cells

        async def map_page() -> list[tuple[Any, ...]]:
            cells = []
            for side in ("map-a", "map-b"):
                dep = await page.get_attribute(f"#{side} table", "data-deployment")
                for c in await data_values(
                    page, f"#{side} td", "region", "hour", "value", "samples", "level"
                ):
                    cells.append(
                        (
                            dep,
                            c["region"],
                            int(c["hour"]),
                            float(c["value"]),
                            float(c["samples"]),
                            c["level"],
                        )
                    )
            return sorted(cells)

        async def map_api_sorted(q: str = quantile) -> list[tuple[Any, ...]]:
            return sorted(await map_api(q))

        maps[quantile], _ = await agree(map_page, map_api_sorted)
        assert len(maps[quantile]) == 2 * 3 * 24
    # fast in eu at this hour has its own samples; apac has none (borrowed or global)
    levels = {(c[1], c[5]) for c in maps["p50_ms"] if c[0] == "fast"}
    assert ("eu", "region_hour") in levels and ("eu", "region") in levels
    assert {level for region, level in levels if region == "apac"} <= {"hour", "global"}
    await page.check("input[name='latency-q'][value='p50_ms']")
    await page.screenshot(path=str(shots / "console-latency.png"))

    # -- Deployments -------------------------------------------------------------------------
    await page.click("#nav a[href='#deployments']")
    await page.wait_for_selector("#deployments-table tbody tr")

    async def deployments_api() -> dict[str, list[Any]]:
        d = await api(gateway, "/admin/deployments")
        u = await api(gateway, "/admin/upstreams")
        out = {}
        for name, dep in d["deployments"].items():
            rl = u["deployments"][name]["rate_limit"]
            out[name] = [
                dep["state"],
                dep["health_score"],
                dep["weight"],
                rl["used_requests"] if rl else None,
                dep["model_version"] or "",
            ]
        return out

    async def deployments_page() -> dict[str, list[Any]]:
        out = {}
        for row in await data_values(page, "#deployments-table tbody tr", "deployment"):
            name = row["deployment"]
            cells = {
                c["field"]: c["value"]
                for c in await data_values(
                    page, f"#deployments-table tr[data-deployment='{name}'] td", "field", "value"
                )
            }
            out[name] = [
                cells["state"],
                num(cells["health"]),
                num(cells["weight"]),
                None if cells["rate_limit"] == "" else int(cells["rate_limit"]),
                cells["version"],
            ]
        return out

    # the rate-limit column counts the limiter's window, the clock's current minute: give the
    # steady deployment fresh requests, and expect them counted unless the minute turned
    minute = int(time.time() // 60)
    await simulate_load(gateway, [(KEYS[0], "solo", "eu")] * 2)
    shown_deps, _ = await agree(deployments_page, deployments_api)
    assert shown_deps["steady"][3] is not None
    if int(time.time() // 60) == minute:
        assert shown_deps["steady"][3] >= 2
    assert shown_deps["steady"][4] == "steady-2026"
    catalogue = "#deployments-table tr[data-deployment='steady'] td[data-field='catalogue']"
    assert "context 128,000" in (await page.text_content(catalogue) or "")
    await page.screenshot(path=str(shots / "console-deployments.png"))

    # -- Spend -------------------------------------------------------------------------------
    await page.click("#nav a[href='#spend']")
    await page.wait_for_selector("#spend-deployments tbody tr[data-name]")

    async def spend_api() -> dict[str, Any]:
        d = await api(gateway, "/admin/costs")
        table = {
            (kind, name): [
                s["day"]["usd"],
                s["day"]["losers_share"],
                s["month"]["usd"],
                s["month"]["losers_share"],
            ]
            for kind in ("keys", "deployments")
            for name, s in d[kind].items()
        }
        chart = {
            name: [s["month"]["usd"], s["month"]["losers_usd"]]
            for name, s in d["deployments"].items()
            if s["month"]["usd"] > 0
        }
        return {"table": table, "chart": chart}

    async def spend_page() -> dict[str, Any]:
        table = {}
        for kind, selector in (("keys", "#spend-keys"), ("deployments", "#spend-deployments")):
            for row in await data_values(page, f"{selector} tbody tr[data-name]", "name"):
                cells = await data_values(
                    page, f"{selector} tr[data-name='{row['name']}'] td", "value"
                )
                table[(kind, row["name"])] = [num(c["value"]) for c in cells]
        bars = await data_values(page, "#chart-spend rect.bar-ok", "label", "total", "part")
        chart = {b["label"]: [float(b["total"]), float(b["part"])] for b in bars}
        return {"table": table, "chart": chart}

    shown_spend, _ = await agree(spend_page, spend_api)
    assert shown_spend["table"][("deployments", "steady")][1] > 0  # steady lost races
    assert len([name for kind, name in shown_spend["table"] if kind == "keys"]) == 2
    await page.screenshot(path=str(shots / "console-spend.png"))

    # -- Recent requests ---------------------------------------------------------------------
    await page.click("#nav a[href='#recent']")
    await page.wait_for_selector("#recent-table tbody tr[data-request-id]")

    async def recent_api() -> list[list[Any]]:
        d = await api(gateway, "/admin/recent?limit=50")
        return [
            [
                r["request_id"],
                r["route"] or "",
                r["status"],
                r["winner"] or "",
                r["ttft_ms"],
                r["output_tokens"],
                r["cost_usd"],
                [(a["deployment"], a["outcome"], a["ttft_ms"]) for a in r["attempts"]],
            ]
            for r in d["records"]
        ]

    async def recent_page() -> list[list[Any]]:
        rows = []
        for row in await data_values(page, "#recent-table tbody tr", "requestId"):
            rid = row["requestId"]
            sel = f"#recent-table tr[data-request-id='{rid}']"
            cells = {
                c["field"]: c["value"]
                for c in await data_values(page, f"{sel} td", "field", "value")
            }
            attempts = await data_values(page, f"{sel} li", "deployment", "outcome", "ttft")
            rows.append(
                [
                    rid,
                    cells["route"],
                    int(cells["status"]),
                    cells["winner"],
                    num(cells["ttft"]),
                    int(cells["tokens"]),
                    num(cells["cost"]),
                    [(a["deployment"], a["outcome"], num(a["ttft"])) for a in attempts],
                ]
            )
        return rows

    shown_recent, _ = await agree(recent_page, recent_api)
    assert len(shown_recent) == 50
    assert "hello" not in (await page.text_content("#recent-table") or "")
    await page.screenshot(path=str(shots / "console-recent.png"))

    # The key never went into a URL; signing out forgets it.
    assert urls and not [u for u in urls if ADMIN in u]
    await page.click("#logout")
    await page.wait_for_selector("#login:not([hidden])")
    assert await page.evaluate("sessionStorage.getItem('raceGatewayAdminKey')") is None
    await page.screenshot(path=str(shots / "console-login.png"))
