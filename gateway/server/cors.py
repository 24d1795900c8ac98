"""CORS: pages on other origins (chat frontends) may call `/v1/*` from a browser.

Off unless `cors.allow_origins` is configured; then `build_app` adds two pieces:
- a middleware, placed before authentication and before the router's 404/405, answers a
  preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) on any `/v1/`
  path: 204 with the `Access-Control-Allow-*` headers for an allowed origin; 403 with no
  CORS header otherwise, which the browser reports as a CORS failure;
- an `on_response_prepare` hook that gives every `/v1/` response to an allowed origin
  `Access-Control-Allow-Origin` and `-Expose-Headers` just before its headers leave. Errors
  (401, 404, 413, 415, 429, 5xx) are readable by the page, not an opaque "Failed to fetch",
  and an SSE stream, whose headers leave with the first token, carries them too.

No credentials mode: the page sends the gateway key in `Authorization` itself, and the
gateway reads no cookie, so `Access-Control-Allow-Origin: *` is usable with `'*'`.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.config.model import CorsConfig
from gateway.server.errors import ApiError
from gateway.server.middlewares import Handler

ALLOW_METHODS = "GET, HEAD, POST"
# A preflight's answer depends on what the browser asked, beside the origin.
PREFLIGHT_VARY = ("Access-Control-Request-Method", "Access-Control-Request-Headers")
_PREFIX = "/v1/"


class OriginPolicy:
    """Which `Origin` values may read responses: '*', exact origins, or `scheme://host:*`."""

    def __init__(self, origins: Iterable[str]) -> None:
        origins = tuple(origins)
        self.any = "*" in origins
        self.exact = frozenset(o for o in origins if not o.endswith(":*"))
        self.any_port = tuple(o[:-2] for o in origins if o.endswith(":*"))

    def allows(self, origin: str) -> bool:
        if self.any:
            return True
        origin = origin.lower()
        if origin in self.exact:
            return True
        for base in self.any_port:
            if origin == base:  # the scheme's default port
                return True
            port = origin[len(base) + 1 :]
            if origin.startswith(base + ":") and port.isascii() and port.isdigit():
                return True
        return False


class HeaderPolicy:
    """Which request headers a page may send: exact names, `prefix-*` families, or '*'."""

    def __init__(self, names: Iterable[str]) -> None:
        names = tuple(names)
        self.any = "*" in names
        self.exact = frozenset(n for n in names if not n.endswith("*"))
        self.prefixes = tuple(n[:-1] for n in names if n.endswith("*") and n != "*")

    def allows(self, name: str) -> bool:
        return self.any or name in self.exact or name.startswith(self.prefixes)

    def granted(self, requested: str) -> str:
        """The names of `Access-Control-Request-Headers` that are allowed, comma-separated.

        They are named one by one, even for '*': a wildcard never covers `Authorization`.
        A name left out makes the browser refuse the request, naming that header."""
        names = (n.strip().lower() for n in requested.split(","))
        return ", ".join(n for n in names if n and self.allows(n))


def _add_vary(response: web.StreamResponse, names: Iterable[str]) -> None:
    given = response.headers.get("Vary")
    response.headers["Vary"] = ", ".join((given, *names) if given else names)


class CorsPolicy:
    def __init__(self, config: CorsConfig) -> None:
        self.origins = OriginPolicy(config.allow_origins)
        self.headers = HeaderPolicy(config.allow_headers)
        self.expose = ", ".join(config.expose_headers)
        self.max_age = str(config.max_age_s)

    def preflight_response(self, request: web.Request, origin: str) -> web.Response:
        if not self.origins.allows(origin):
            raise ApiError(
                403,
                f"origin {origin[:100]!r} is not in the gateway's cors.allow_origins",
                "invalid_request_error",
                "cors_origin_not_allowed",
            )
        headers = {
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Max-Age": self.max_age,
        }
        granted = self.headers.granted(request.headers.get("Access-Control-Request-Headers", ""))
        if granted:
            headers["Access-Control-Allow-Headers"] = granted
        if request.headers.get("Access-Control-Request-Private-Network") == "true":
            # Chromium's Private Network Access: a page on a public site calling a gateway on
            # localhost or a LAN address; the origin is allowed, so is that.
            headers["Access-Control-Allow-Private-Network"] = "true"
        response = web.Response(status=204, headers=headers)
        _add_vary(response, PREFLIGHT_VARY)
        return response

    async def add_headers(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        """`on_response_prepare`: runs for every response, just before its headers are sent."""
        if not request.path.startswith(_PREFIX):
            return
        origin = request.headers.get("Origin")
        if origin is not None and self.origins.allows(origin):
            response.headers["Access-Control-Allow-Origin"] = "*" if self.origins.any else origin
            if self.expose:
                response.headers["Access-Control-Expose-Headers"] = self.expose
        if not self.origins.any:  # the answer depends on the origin: shared caches must know
            _add_vary(response, ("Origin",))


def cors_middleware(policy: CorsPolicy) -> Middleware:
    @web.middleware
    async def answer_preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and request.path.startswith(_PREFIX):
            origin = request.headers.get("Origin")
            if origin is not None and "Access-Control-Request-Method" in request.headers:
                return policy.preflight_response(request, origin)
        return await handler(request)  # a plain OPTIONS goes on to the router (405)

    return answer_preflight
