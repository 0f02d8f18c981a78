"""CORS for browser clients on other origins (config `cors_origins`).

Preflights are answered here, before authentication (a browser sends no key on them).
The allowed origin is echoed, never `*` together with credentials; `*` in cors_origins
allows any origin without credentials.
"""

from __future__ import annotations

from aiohttp import web

from eldric.errors import EldricError

# The CORS headers for this request's reply; the relay adds them to a streamed reply's
# head, which goes out before this middleware sees the reply.
CORS_HEADERS: web.RequestKey[dict[str, str]] = web.RequestKey("eldric_cors_headers", dict)

# What browser clients send: OpenAI's, Anthropic's (its version and betas, and the flag
# its JS SDK sets in a browser) and the Stainless-built SDKs' own headers.
_ALLOW_HEADERS = ", ".join((
    "Authorization", "Content-Type", "X-API-Key", "X-Request-ID", "OpenAI-Beta",
    "traceparent", "anthropic-version", "anthropic-beta",
    "anthropic-dangerous-direct-browser-access", "X-Stainless-Lang",
    "X-Stainless-Package-Version", "X-Stainless-OS", "X-Stainless-Arch",
    "X-Stainless-Runtime", "X-Stainless-Runtime-Version", "X-Stainless-Retry-Count",
    "X-Stainless-Timeout"))
_EXPOSE = ("X-Request-ID, X-RateLimit-Limit, X-RateLimit-Remaining, Retry-After, "
           "X-Eldric-Worker, X-Eldric-Model")


def middleware(origins: list[str]):  # type: ignore[no-untyped-def]
    allowed = frozenset(origins)
    anyone = "*" in allowed

    @web.middleware
    async def cors(request: web.Request, handler):  # type: ignore[no-untyped-def]
        origin = request.headers.get("Origin")
        if origin is None or not (anyone or origin in allowed):
            return await handler(request)
        headers = {"Vary": "Origin"}
        if anyone and origin not in allowed:
            headers["Access-Control-Allow-Origin"] = "*"
        else:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            headers.update({"Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
                            "Access-Control-Allow-Headers": _ALLOW_HEADERS,
                            "Access-Control-Max-Age": "600"})
            return web.Response(status=204, headers=headers)
        headers["Access-Control-Expose-Headers"] = _EXPOSE
        request[CORS_HEADERS] = headers
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(headers)
            raise
        except EldricError as exc:  # rendered by the outer middleware, with these headers
            exc.headers = {**headers, **exc.headers}
            raise
        if not resp.prepared:
            resp.headers.update(headers)
        return resp

    return cors
