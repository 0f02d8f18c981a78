"""The /v1/responses store on both backends (SQLite, and a real redis-server): per owner,
TTL, the count and size bounds, chained expansion, a read that waits for its write."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from eldric.store.responses import (
    RedisBackend, Responses, ResponsesConfig, SqliteBackend, Stored, owner_of,
)

A, B = owner_of("key-a"), owner_of("key-b")


@pytest.fixture(params=["sqlite", "redis"])
def make(request, tmp_path):
    """A store on the backend of the parameter; each test closes its own."""
    async def make(**cfg) -> Responses:
        c = ResponsesConfig(**cfg)
        if request.param == "sqlite":
            backend = SqliteBackend(str(tmp_path / "r.db"), c)
        else:
            url = request.getfixturevalue("redis_url")
            backend = RedisBackend(aioredis.from_url(url), c)
        store = Responses(backend, c)
        await store.open()
        return store
    return make


def resp(rid: str, text: str = "out", pad: int = 0) -> dict:
    return {"id": rid, "object": "response", "pad": "x" * pad, "output": [
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": text, "annotations": []}]}]}


def item(text: str) -> dict:
    return {"role": "user", "content": text}


async def test_kept_per_owner(make):
    store = await make()
    store.save(A, Stored(resp("resp_1"), [item("hi")]))
    got = await store.get(A, "resp_1")  # waits for the queued write
    assert got is not None and got.response["id"] == "resp_1" and got.input == [item("hi")]
    assert await store.get(B, "resp_1") is None
    assert await store.delete(B, "resp_1") is False
    assert await store.get(A, "resp_1") is not None
    assert await store.delete(A, "resp_1") is True
    assert await store.get(A, "resp_1") is None
    assert await store.delete(A, "resp_1") is False
    await store.close()


async def test_a_chain_expands_oldest_first(make):
    store = await make()
    store.save(A, Stored(resp("resp_1", "b"), [item("a")]))
    store.save(A, Stored(resp("resp_2", "d"), [item("c")], previous="resp_1"))
    store.save(A, Stored(resp("resp_3", "f"), [item("e")], previous="resp_2"))
    conv = await store.conversation(A, "resp_3")
    texts = [i["content"] if "role" in i and i["role"] == "user"
             else i["content"][0]["text"] for i in conv]
    assert texts == ["a", "b", "c", "d", "e", "f"]
    assert await store.conversation(A, "resp_9") is None
    assert await store.conversation(B, "resp_3") is None
    # a link gone ends the chain there
    await store.delete(A, "resp_1")
    assert len(await store.conversation(A, "resp_3")) == 4
    await store.close()


async def test_a_cycle_does_not_loop(make):
    store = await make()
    store.save(A, Stored(resp("resp_1"), [item("a")], previous="resp_1"))
    assert len(await store.conversation(A, "resp_1")) == 2
    await store.close()


async def test_the_oldest_go_past_max_responses(make):
    store = await make(max_responses=2)
    for i in range(3):
        store.save(A, Stored(resp(f"resp_{i}"), []))
        await store.get(A, f"resp_{i}")
        await asyncio.sleep(0.01)  # distinct times
    assert await store.get(A, "resp_0") is None
    assert await store.get(A, "resp_1") is not None and await store.get(A, "resp_2")
    await store.close()


async def test_too_big_is_not_kept(make):
    store = await make(max_bytes=2048)
    store.save(A, Stored(resp("resp_big", pad=4096), []))
    store.save(A, Stored(resp("resp_small"), []))
    assert await store.get(A, "resp_big") is None
    assert await store.get(A, "resp_small") is not None
    await store.close()


async def test_expired_is_unknown(make):
    store = await make(ttl_ms=1000)
    store.save(A, Stored(resp("resp_1"), []))
    assert await store.get(A, "resp_1") is not None
    await asyncio.sleep(1.2)
    assert await store.get(A, "resp_1") is None
    assert await store.delete(A, "resp_1") is False
    await store.close()


async def test_a_response_without_an_id_is_not_kept(make):
    store = await make()
    store.save(A, Stored({"object": "response"}, []))
    assert not store._pending
    await store.close()


def test_owner_is_a_digest():
    assert owner_of(None) == owner_of("") == ""
    assert A != B and "key-a" not in A and len(A) == 64


async def test_the_sqlite_bound_holds_across_a_restart(tmp_path):
    cfg = ResponsesConfig(max_responses=2)
    for i in range(3):  # a process per response: each counts what the file holds
        store = Responses(SqliteBackend(str(tmp_path / "r.db"), cfg), cfg)
        await store.open()
        store.save(A, Stored(resp(f"resp_{i}"), []))
        await store.get(A, f"resp_{i}")
        await store.close()
        await asyncio.sleep(0.01)
    store = Responses(SqliteBackend(str(tmp_path / "r.db"), cfg), cfg)
    await store.open()
    assert await store.get(A, "resp_0") is None and await store.get(A, "resp_2")
    # a replaced row is counted twice: the exact count then says it is still under
    store.save(A, Stored(resp("resp_2", "again"), []))
    assert (await store.get(A, "resp_2")).response["output"][0]["content"][0]["text"] == "again"
    assert await store.get(A, "resp_1") is not None
    await store.close()


async def test_a_chain_past_its_bounds_is_a_400(make):
    from eldric.errors import EldricError

    store = await make(max_chain=3, max_chain_bytes=4096)
    for i in range(5):
        store.save(A, Stored(resp(f"resp_{i}"), [item("a")],
                             previous=f"resp_{i - 1}" if i else None))
    assert len(await store.conversation(A, "resp_2")) == 6  # 3 links: at the bound
    with pytest.raises(EldricError) as info:
        await store.conversation(A, "resp_3")  # 4 links
    assert (info.value.status, info.value.code, info.value.param) == (
        400, "conversation_too_long", "previous_response_id")
    store.save(A, Stored(resp("resp_big", pad=3000), [], previous="resp_0"))
    store.save(A, Stored(resp("resp_top", pad=1000), [], previous="resp_big"))
    assert len(await store.conversation(A, "resp_big")) == 3
    with pytest.raises(EldricError) as info:
        await store.conversation(A, "resp_top")  # 3 links, over 4096 stored bytes
    assert (info.value.status, info.value.code) == (400, "conversation_too_long")
    await store.close()
