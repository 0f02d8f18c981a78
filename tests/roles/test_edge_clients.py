"""The edge's two client stores answer the same questions the same way (clients.Clients)."""

from __future__ import annotations

import contextlib

import pytest

from eldric.roles.edge.clients import LocalClients, RedisClients
from eldric.store.sqlite import Store


@contextlib.asynccontextmanager
async def store(kind: str, tmp_path, request):  # type: ignore[no-untyped-def]
    if kind == "local":
        clients = LocalClients(Store(str(tmp_path / "edge.db"), ["clients"]), {"sk-static": "ops"})
    else:
        import redis.asyncio as aioredis

        clients = RedisClients(aioredis.from_url(request.getfixturevalue("redis_url")),
                               {"sk-static": "ops"})
    await clients.open()
    try:
        yield clients
    finally:
        await clients.close()


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_static_keys_are_told_from_created_ones(kind, tmp_path, request):
    """lookup_static (what farm mode can still check while Redis is away) knows the
    config's keys only; lookup knows both; neither knows a wrong key."""
    async with store(kind, tmp_path, request) as clients:
        _, created = await clients.create("app", "", None)
        assert (await clients.lookup(created)).name == "app"
        assert clients.lookup_static(created) is None
        assert clients.lookup_static("sk-static").name == "ops"
        assert (await clients.lookup("sk-static")).static
        assert clients.lookup_static("sk-wrong") is None and await clients.lookup("sk-wrong") is None
        assert await clients.revoke("ops") is None  # a static key cannot be revoked
