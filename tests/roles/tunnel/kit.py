"""The edge alone, with keys of every scope, and a worker's side scripted with aiohttp."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator

import aiohttp

from eldric import registry
from eldric.cli import load_config
from eldric.wire.tunnel import HEADERS_HEADER, STATUS_HEADER
from tests.conftest import serving

WORKER, ROUTER, PLAIN, ADMIN = "sk-worker", "sk-router", "sk-plain", "sk-admin"
OTHER = "sk-other"  # another worker owner
KEYS = {WORKER: "home", ROUTER: "router", PLAIN: "plain", OTHER: "lab"}
SCOPES = {"home": ["inference", "register"], "router": ["cluster"], "lab": ["register"]}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextlib.asynccontextmanager
async def edge(tmp_path, **flags) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """An edge on a free loopback port (plain HTTP, no routers); its URL."""
    roles = registry.resolve("edge")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELDRIC_")}
    env["ELDRIC_EDGE_AUTH_API_KEYS"] = json.dumps(KEYS)
    env["ELDRIC_EDGE_AUTH_CLIENTS"] = json.dumps({n: {"scopes": s} for n, s in SCOPES.items()})
    flags = {"no_tls": True, "http_port": 0, "bind": "127.0.0.1", "admin_key": ADMIN,
             "data_dir": str(tmp_path / "edge-data"), **flags}
    loaded = load_config(roles, flags, env)
    async with serving(roles, loaded) as urls:
        yield urls["edge"]


async def connect(s: aiohttp.ClientSession, url: str, key: str = WORKER,
                  **body: object) -> dict:
    async with s.post(url + "/api/v1/tunnel/connect", json=body, headers=auth(key)) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def poll(s: aiohttp.ClientSession, url: str, tid: str, key: str = WORKER) -> dict | None:
    """One poll: the request it got, or None on 204."""
    async with s.get(f"{url}/api/v1/tunnel/{tid}/poll", headers=auth(key)) as r:
        if r.status == 204:
            return None
        assert r.status == 200, await r.text()
        (req,) = (await r.json())["requests"]
        req["body"] = base64.b64decode(req["body"])
        return req


def head(status: int, headers: list[list[str]]) -> dict[str, str]:
    return {**auth(WORKER), STATUS_HEADER: str(status), HEADERS_HEADER: json.dumps(headers)}


SSE = [["Content-Type", "text/event-stream"]]


async def forwarded(s: aiohttp.ClientSession, url: str, tid: str, body: object = None,
                    key: str = ROUTER) -> asyncio.Future:
    """A router's chat call through the tunnel, running: the future of its response."""
    return asyncio.ensure_future(s.post(f"{url}/api/v1/tunnel/{tid}/forward/v1/chat/completions",
                                        json=body or {"model": "m", "messages": []},
                                        headers=auth(key)))


async def forwarded_to(s: aiohttp.ClientSession, url: str, tid: str, path: str,
                       body: object = None) -> asyncio.Future:
    """A router's POST of `path` on the worker, through the tunnel, running."""
    return asyncio.ensure_future(s.post(f"{url}/api/v1/tunnel/{tid}/forward{path}",
                                        json=body or {"model": "m", "messages": []},
                                        headers=auth(ROUTER)))


async def raw_upload(url: str, tid: str, req_id: str, status: int = 200,
                     headers: list[list[str]] = SSE):  # type: ignore[no-untyped-def]
    """A response upload on a socket of the test's own: its head sent, chunked; the test
    writes chunks (chunk()) and ends or breaks it."""
    from tests.conftest import open_raw

    reader, writer = await open_raw(url)
    lines = [f"POST /api/v1/tunnel/{tid}/response/{req_id} HTTP/1.1", "Host: edge",
             "Transfer-Encoding: chunked",
             *[f"{k}: {v}" for k, v in head(status, headers).items()]]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    return reader, writer


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)
