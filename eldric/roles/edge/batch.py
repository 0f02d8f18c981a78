"""The edge's Batch API (eldric.batch): owned by the client's key, its lines sent to the
routers in turn at batch priority. A router that defers (503 batch_deferred: no idle
capacity there) is passed over for the next; when every router defers, the runner
waits out the Retry-After. A router not answering is passed over too (and checked)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from eldric import batch, keys
from eldric.context import data_file
from eldric.errors import EldricError
from eldric.roles.edge.config import EdgeConfig
from eldric.roles.edge.handlers import _owner
from eldric.wire.openai import model_of
from eldric.roles.edge.state import EDGE


def install(app: web.Application, cfg: EdgeConfig) -> None:
    if not cfg.batch.on:
        return

    async def send(path: str, body: bytes, headers: dict[str, str]) -> batch.Reply:
        es = app[EDGE]
        t = es.timeouts
        timeout = aiohttp.ClientTimeout(sock_connect=t.connect, sock_read=t.first_byte)
        deferred: batch.Reply | None = None
        failure: Exception | None = None
        for state in es.routers.order():
            try:
                async with app[keys.SESSION].post(state.url + path, data=body, headers=headers,
                                                  timeout=timeout) as r:
                    reply = batch.Reply(r.status, dict(r.headers), await r.read())
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                failure = exc
                app[keys.PROBER].poke(state)  # down, or was the request the slow part?
                continue
            if batch.runner.deferred(reply) is None:
                return reply
            deferred = reply  # another router may have idle capacity
        if deferred is not None:
            return deferred
        raise ConnectionError(f"no router answered ({failure or 'none configured'})")

    async def client_of(owner: str):  # type: ignore[no-untyped-def]
        return next((c for c in await app[EDGE].clients.all() if c.key_hash == owner), None)

    async def allow(owner: str, body: bytes) -> tuple[str, str] | None:
        """A key's allowed_models hold for its batch lines as for its requests."""
        client = await client_of(owner)
        if client is None:
            return None
        try:
            app[EDGE].budgets.allow(client, model_of(body) or "")
        except EldricError as exc:
            return exc.code or "model_not_allowed", exc.message
        return None

    async def count(owner: str, path: str, body: bytes, reply: batch.Reply,
                    latency_ms: float) -> None:
        """A line's answer counted to the key that owns the batch (usage and budgets;
        never its request rate limit: batch lines take idle capacity only)."""
        es = app[EDGE]
        if es.usage is None:
            return
        client = await client_of(owner)
        await es.usage.whole(client, path, body, model_of(body) or "", reply.status,
                             reply.body, latency_ms, reply.headers.get("X-Eldric-Worker", ""))

    batch.install(app, cfg.batch, _owner, send, data_file(app, "batch.db"),
                  data_file(app, "batch.files"), count, allow)
