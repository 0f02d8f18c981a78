"""A bare aiohttp relay: the floor of what a plain aiohttp hop costs, for bench/side.py.

    python bench/relay.py --port P --upstream http://127.0.0.1:MOCK

Every request (any method, any path) is sent on to the upstream with one pooled
ClientSession (keep-alive, no limit) and the reply is streamed back as it arrives: no
parsing of the body, no auth, no logging, no metrics. It runs on uvloop like eldric does,
so eldric's cost above it is what eldric itself does, not the event loop or aiohttp.
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

# hop-by-hop headers (RFC 9110 7.6.1) and the ones aiohttp sets itself
_DROP = frozenset(("connection", "keep-alive", "transfer-encoding", "te", "trailer",
                   "upgrade", "proxy-authorization", "proxy-authenticate", "host",
                   "content-length"))

SessionKey = web.AppKey("session", aiohttp.ClientSession)
UpstreamKey = web.AppKey("upstream", str)


async def relay(request: web.Request) -> web.StreamResponse:
    session = request.app[SessionKey]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
    body = await request.read()
    async with session.request(request.method, request.app[UpstreamKey] + request.path_qs,
                               data=body, headers=headers) as up:
        out_headers = {k: v for k, v in up.headers.items() if k.lower() not in _DROP}
        if up.content_length is not None:  # a whole reply: pass it on in one piece
            return web.Response(status=up.status, body=await up.read(), headers=out_headers)
        resp = web.StreamResponse(status=up.status, headers=out_headers)
        await resp.prepare(request)
        async for chunk in up.content.iter_any():  # a stream: each chunk as it comes
            await resp.write(chunk)
        await resp.write_eof()
        return resp


def make_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=64 * 2**20)
    app[UpstreamKey] = upstream.rstrip("/")

    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=300)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                         timeout=aiohttp.ClientTimeout(total=60)) as s:
            app[SessionKey] = s
            yield

    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9100")
    a = p.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    web.run_app(make_app(a.upstream), host=a.bind, port=a.port, access_log=None,
                print=None)


if __name__ == "__main__":
    main()
