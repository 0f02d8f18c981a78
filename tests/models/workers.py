"""A real worker over the fake Ollama (tests.fakes.ollama_models), and how to read its
model API: shared by the model tests (and the controller's fleet tests)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from tests.conftest import run_eldric, url_of
from tests.fakes import ollama as fake_ollama
from tests.fakes.ollama_models import MODELS, Models


@dataclass
class OllamaWorker:
    url: str  # the worker
    ollama: str  # the fake Ollama
    app: web.Application  # the fake's app

    @property
    def models(self) -> Models:
        return self.app[MODELS]

    def pulls(self, name: str) -> int:
        return self.models.seen.count(("pull", name))


@contextlib.asynccontextmanager
async def ollama_worker(aiohttp_server, tmp_path, models: Models | None = None,  # type: ignore[no-untyped-def]
                        **flags) -> AsyncIterator[OllamaWorker]:
    """A worker with --backend ollama in front of a fake Ollama of its own."""
    server = await aiohttp_server(fake_ollama.make_app(manage=models or Models()))
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="ollama",
                          backend_url=url_of(server), **flags) as urls:
        yield OllamaWorker(urls["worker"], url_of(server), server.app)


async def lines(resp: aiohttp.ClientResponse, limit: int | None = None) -> list[dict]:
    """The NDJSON lines of a reply (the first `limit` of them, then stop reading)."""
    out = []
    async for raw in resp.content:
        if raw.strip():
            out.append(json.loads(raw))
            if limit is not None and len(out) >= limit:
                break
    return out


async def pull(session: aiohttp.ClientSession, worker: str, **body) -> list[dict]:  # type: ignore[no-untyped-def]
    async with session.post(worker + "/api/v1/models/pull", json=body) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("application/x-ndjson")
        return await lines(r)


async def op(session: aiohttp.ClientSession, worker: str, op_id: str) -> dict:
    async with session.get(f"{worker}/api/v1/models/ops/{op_id}") as r:
        assert r.status == 200, await r.text()
        return await r.json()


def gguf_bytes(architecture: str = "llama", template: str = "{{ messages }}",
               filler: int = 200_000) -> bytes:
    """A small GGUF v3 file (gguf.md's layout): two string key/values, no tensors, then
    `filler` bytes so a download takes several chunks."""
    import struct

    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    kvs = [("general.architecture", architecture), ("tokenizer.chat_template", template)]
    body = b"".join(s(k) + struct.pack("<I", 8) + s(v) for k, v in kvs)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + body + b"\0" * filler


@dataclass
class FileServer:
    url: str
    gets: list[str]  # the paths asked for, in order


@contextlib.asynccontextmanager
async def file_server(aiohttp_server, folder) -> AsyncIterator[FileServer]:  # type: ignore[no-untyped-def]
    """The files of `folder` over HTTP (aiohttp's static files: Range, HEAD), each GET
    recorded."""
    gets: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
        gets.append(request.path)
        return await handler(request)

    app = web.Application(middlewares=[record])
    app.router.add_static("/", folder)
    server = await aiohttp_server(app)
    yield FileServer(url_of(server), gets)
