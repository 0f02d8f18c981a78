"""Helpers of the model-job tests: a real controller, workers registered with it (fake
model workers from tests/fakes/model_worker.py, or real eldric workers), jobs awaited."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp.test_utils import TestServer

from tests.conftest import run_eldric, until
from tests.fakes import model_worker

OLLAMA_OPS = {"pull": ["ollama"], "install": True, "delete": True}


def controller(tmp_path, **flags):  # type: ignore[no-untyped-def]
    return run_eldric("controller", tmp_path, port=0, bind="127.0.0.1", **flags)


async def register(s: aiohttp.ClientSession, base: str, url: str, *, wid: str,
                   model_ops: dict | None = OLLAMA_OPS, worker_type: str = "inference",
                   backend: str = "ollama", models: list[str] | None = None,
                   status: str = "healthy", key: str | None = None) -> str:
    body = {"worker_type": worker_type, "url": url, "id": wid, "models": models or [],
            "status": status, "backend": {"type": backend, "url": "http://127.0.0.1:1",
                                          "healthy": True}}
    if model_ops is not None:
        body["model_ops"] = model_ops
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with s.post(base + "/api/v1/workers/register", json=body, headers=headers) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["id"]


async def post(s: aiohttp.ClientSession, url: str, body: dict, key: str | None = None
               ) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with s.post(url, json=body, headers=headers) as r:
        return r.status, await r.json()


async def get(s: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with s.get(url) as r:
        return r.status, await r.json()


async def job(s: aiohttp.ClientSession, base: str, job_id: str) -> dict:
    status, body = await get(s, f"{base}/api/v1/models/pull-jobs/{job_id}")
    assert status == 200, body
    return body


async def finished(s: aiohttp.ClientSession, base: str, job_id: str,
                   timeout: float = 10) -> dict:
    async def done():  # type: ignore[no-untyped-def]
        j = await job(s, base, job_id)
        return j if j["state"] != "running" else None
    return await until(done, timeout=timeout)


def by_worker(j: dict) -> dict[str, dict]:
    return {t["worker_id"]: t for t in j["targets"]}


@contextlib.asynccontextmanager
async def heartbeats(s: aiohttp.ClientSession, base: str, wid: str, every: float = 0.2):
    """Heartbeat `wid` (a fake worker) to the controller while the block runs; a
    controller that is down meanwhile is tried again."""
    async def beat() -> None:
        while True:
            try:
                async with s.post(f"{base}/api/v1/workers/{wid}/heartbeat",
                                  json={"status": "healthy", "load": {}}):
                    pass
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(every)
    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def up(s: aiohttp.ClientSession, base: str) -> bool:
    """Whether eldric at `base` answers /health (a subprocess starting)."""
    try:
        async with s.get(base + "/health") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


@contextlib.asynccontextmanager
async def fake_workers(*knobs: model_worker.Knobs):
    """A fake model worker per Knobs (tests/fakes/model_worker.py), on loopback: their
    servers (url_of() each), closed after the block."""
    servers = []
    try:
        for k in knobs:
            server = TestServer(model_worker.make_app(k), host="127.0.0.1")
            await server.start_server()
            servers.append(server)
        yield servers
    finally:
        for server in servers:
            await server.close()
