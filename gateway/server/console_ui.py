"""`GET /ui`: the console, static files shipped in the package (gateway/server/ui/).

The page itself holds no data and needs no key: it asks for the admin key in a form, keeps
it in the tab's `sessionStorage` (never in a URL or a cookie) and calls the `/admin/*` JSON
endpoints with `Authorization: Bearer`. Files are read once when the routes are added, so
no handler touches the disk. A strict Content-Security-Policy allows only the console's own
script and style, and no form submission: without its script, the form cannot send the key
anywhere.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from gateway.server.errors import ApiError
from gateway.server.keys import GATEWAY

ASSETS = {  # name -> content type; nothing else is served
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def load_files() -> dict[str, bytes]:
    folder = resources.files("gateway.server").joinpath("ui")
    names = ["index.html", *ASSETS]
    return {name: folder.joinpath(name).read_bytes() for name in names}


def add_routes(app: web.Application) -> None:
    files = load_files()

    def admin_enabled(request: web.Request) -> None:
        if request[GATEWAY].config.admin.key is None:
            raise ApiError(
                403,
                "the console needs the admin API: set admin.key",
                "permission_error",
                "admin_disabled",
            )

    async def index(request: web.Request) -> web.Response:
        admin_enabled(request)
        return web.Response(
            body=files["index.html"], content_type="text/html", charset="utf-8", headers=HEADERS
        )

    async def slash(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(location="../ui")

    async def asset(request: web.Request) -> web.Response:
        admin_enabled(request)
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.Response(body=files[name], headers={**HEADERS, "Content-Type": ASSETS[name]})

    app.router.add_get("/ui", index)
    app.router.add_get("/ui/", slash)
    app.router.add_get("/ui/assets/{name}", asset)
