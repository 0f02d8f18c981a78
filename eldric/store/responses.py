"""Stored responses of /v1/responses: what makes `previous_response_id`, `GET` and `DELETE`
work against any backend.

The hop the client talks to keeps each response it produced (``store`` not false) with the
request's own input items and the id of the response it continued, per owner: the SHA-256
of the API key that made it ("" without one), so one client can neither read nor delete
another's (it gets the 404 an unknown id gets). ``conversation(owner, id)`` expands an id
into the items it stands for: every earlier link's input and output, oldest first, then its
own. Bounds: each response lives ``ttl_ms``; past ``max_responses`` the oldest go first; a
response (with its input) over ``max_bytes`` is not kept, and its id is then unknown.

Two backends behind one interface, like the edge's clients: SQLite under --data-dir
(eldric.store.sqlite, one thread) and Redis (the edge's farm mode: every edge sees every
response). Writes are queued off the reply's path; a read of an id waits for that id's
queued write, so a client that chains at once never misses the response it just got.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import msgspec
import structlog

from eldric.auth import hash_key
from eldric import keys
from eldric.context import data_file
from eldric.errors import BadRequest, EldricError
from eldric.fields import flag_meta
from eldric.store.sqlite import Store
from eldric.tasks import spawn

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aiohttp import web
    from redis.asyncio import Redis

log = structlog.get_logger("eldric.store")

_DAY_MS = 86_400_000
TtlMs = Annotated[int, msgspec.Meta(ge=1000, le=365 * _DAY_MS, extra={"duration": "ms"})]


class ResponsesConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The store of /v1/responses on a hop clients talk to (file section "responses")."""

    store: Annotated[bool, flag_meta(
        "keep responses (store not false) and expand previous_response_id here, when this "
        "is the first eldric hop of the request", flag="responses-store")] = True
    ttl_ms: Annotated[TtlMs, flag_meta(
        "how long a stored response is kept, ms (units: 720h; at most a year)",
        flag="responses-ttl")] = 30 * _DAY_MS
    max_responses: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "most stored responses; past it the oldest go first", flag="responses-max")] = 10_000
    max_bytes: Annotated[int, msgspec.Meta(ge=1024), flag_meta(
        "largest response (with its input) kept, bytes", flag="responses-max-bytes")] = 1 << 20
    # previous_response_id is one store read per link, serially, before the request goes
    # on: these bound what a client's chain may cost (and send on) per request
    max_chain: Annotated[int, msgspec.Meta(ge=1), flag_meta(
        "most responses a previous_response_id may chain back through (a longer chain is "
        "a 400)", flag="responses-max-chain")] = 256
    max_chain_bytes: Annotated[int, msgspec.Meta(ge=1024), flag_meta(
        "most stored bytes a previous_response_id may expand to (more is a 400)",
        flag="responses-max-chain-bytes")] = 16 << 20


def owner_of(key: str | None) -> str:
    """Whose responses these are: the API key's digest, never the key."""
    return hash_key(key) if key else ""  # the edge's digest of a client's key, so they match


class Stored(msgspec.Struct):
    response: dict[str, Any]  # the response object as the client got it
    input: list[dict[str, Any]]  # the request's own input items (not the expanded ones)
    previous: str | None = None  # the response it continued


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Stored)


def _unavailable(exc: Exception) -> EldricError:
    log.warning("response_store_unreachable", error=repr(exc))
    return EldricError(f"the response store is unreachable: {exc}", status=503,
                       code="store_unavailable")


def _too_long(what: str, setting: str) -> BadRequest:
    return BadRequest(f"the conversation of previous_response_id is too long ({what}; this "
                      f"server's {setting}): start a new one with the input it needs",
                      param="previous_response_id", code="conversation_too_long")


class Backend(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def put(self, owner: str, rid: str, value: bytes) -> None: ...
    async def get(self, owner: str, rid: str) -> bytes | None: ...
    async def delete(self, owner: str, rid: str) -> bool: ...


class Responses:
    """The store a hop uses: bounds, queued writes, chain expansion, over a Backend."""

    def __init__(self, backend: Backend, cfg: ResponsesConfig) -> None:
        self.backend = backend
        self.cfg = cfg
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def open(self) -> None:
        await self.backend.open()

    async def close(self) -> None:
        for task in list(self._pending.values()):
            await asyncio.gather(task, return_exceptions=True)
        await self.backend.close()

    def save(self, owner: str, stored: Stored) -> None:
        """Queue the write (the reply does not wait for it)."""
        rid = stored.response.get("id")
        if not isinstance(rid, str) or not rid:
            return
        value = _enc.encode(stored)
        if len(value) > self.cfg.max_bytes:
            log.info("response_not_stored", id=rid, bytes=len(value), max=self.cfg.max_bytes)
            return
        key = (owner, rid)
        task = spawn(self._put(key, value), name=f"store-response-{rid}")
        self._pending[key] = task

    async def _put(self, key: tuple[str, str], value: bytes) -> None:
        try:
            await self.backend.put(*key, value)
        except Exception as exc:  # a lost write is a later 404, never a failed reply
            log.warning("response_store_failed", id=key[1], error=repr(exc))
        finally:
            if self._pending.get(key) is asyncio.current_task():
                del self._pending[key]

    async def _after_write(self, owner: str, rid: str) -> None:
        pending = self._pending.get((owner, rid))
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)

    async def _raw(self, owner: str, rid: str) -> bytes | None:
        await self._after_write(owner, rid)
        try:
            return await self.backend.get(owner, rid)
        except Exception as exc:
            raise _unavailable(exc) from None

    async def get(self, owner: str, rid: str) -> Stored | None:
        raw = await self._raw(owner, rid)
        return _dec.decode(raw) if raw is not None else None

    async def delete(self, owner: str, rid: str) -> bool:
        await self._after_write(owner, rid)
        try:
            return await self.backend.delete(owner, rid)
        except Exception as exc:
            raise _unavailable(exc) from None

    async def conversation(self, owner: str, rid: str) -> list[dict] | None:
        """The items `rid` stands for, oldest first; None if `rid` is unknown to `owner`.
        A link that expired ends the chain there: the conversation starts after it. A chain
        longer than max_chain links or max_chain_bytes stored bytes is a 400."""
        items: list[dict] = []
        seen: set[str] = set()
        current: str | None = rid
        size = 0
        while current is not None and current not in seen:
            if len(seen) == self.cfg.max_chain:
                raise _too_long(f"more than {self.cfg.max_chain} responses",
                                "responses.max_chain")
            seen.add(current)
            raw = await self._raw(owner, current)
            if raw is None:
                if current == rid:
                    return None
                break
            size += len(raw)
            if size > self.cfg.max_chain_bytes:
                raise _too_long(f"more than {self.cfg.max_chain_bytes} bytes",
                                "responses.max_chain_bytes")
            stored = _dec.decode(raw)
            items[:0] = [*stored.input, *stored.response.get("output", ())]
            current = stored.previous
        return items


# ---------------------------------------------------------------- SQLite (the default)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS responses (owner TEXT NOT NULL, id TEXT NOT NULL, "
    "expires REAL NOT NULL, value BLOB NOT NULL, PRIMARY KEY (owner, id))",
    "CREATE INDEX IF NOT EXISTS responses_expires ON responses (expires)",
)


class SqliteBackend:
    """One table in a Store's SQLite file; expired rows go at each write, and so do the
    oldest past max_responses (every row has the same TTL: oldest = soonest to expire).
    The rows are counted once, then kept count of (an over-count, a replaced row, only
    brings the exact count, a scan, sooner), so a write scans nothing while under."""

    def __init__(self, path: str, cfg: ResponsesConfig) -> None:
        self.store = Store(path, (), _SCHEMA)
        self.cfg = cfg
        self._rows = 0  # on the store's thread only

    async def open(self) -> None:
        await self.store.open()

        def count(db: sqlite3.Connection) -> None:
            self._rows = db.execute("SELECT count(*) FROM responses").fetchone()[0]
        await self.store.run(count)

    async def close(self) -> None:
        await self.store.close()

    async def put(self, owner: str, rid: str, value: bytes) -> None:
        now, ttl, most = time.time(), self.cfg.ttl_ms / 1000, self.cfg.max_responses

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN")
                gone = db.execute("DELETE FROM responses WHERE expires < ?", (now,)).rowcount
                db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                           (owner, rid, now + ttl, value))
                self._rows += 1 - gone
                if self._rows > most:
                    self._rows = db.execute("SELECT count(*) FROM responses").fetchone()[0]
                    db.execute("DELETE FROM responses WHERE rowid IN (SELECT rowid FROM "
                               "responses ORDER BY expires LIMIT max(0, ? - ?))",
                               (self._rows, most))
                    self._rows = min(self._rows, most)
        await self.store.run(write)

    async def get(self, owner: str, rid: str) -> bytes | None:
        now = time.time()

        def read(db: sqlite3.Connection) -> bytes | None:
            row = db.execute("SELECT value FROM responses WHERE owner = ? AND id = ? AND "
                             "expires >= ?", (owner, rid, now)).fetchone()
            return row[0] if row else None
        return await self.store.run(read)

    async def delete(self, owner: str, rid: str) -> bool:
        now = time.time()

        def remove(db: sqlite3.Connection) -> bool:
            with db:
                cur = db.execute("DELETE FROM responses WHERE owner = ? AND id = ? AND "
                                 "expires >= ?", (owner, rid, now))
            self._rows -= cur.rowcount
            return cur.rowcount > 0
        return await self.store.run(remove)


# ---------------------------------------------------------------- Redis (farm mode)


class RedisBackend:
    """A key per response with Redis's own expiry, and one sorted set (by time stored)
    that trims the oldest past max_responses."""

    PREFIX = "eldric:response:"
    INDEX = "eldric:responses"

    def __init__(self, redis: Redis, cfg: ResponsesConfig) -> None:
        self.redis = redis
        self.cfg = cfg

    def _key(self, owner: str, rid: str) -> str:
        return f"{self.PREFIX}{owner}:{rid}"

    async def open(self) -> None:
        pass  # the connection is the edge's, and so is telling whether Redis is up

    async def close(self) -> None:
        pass  # the edge closes it with its clients

    async def put(self, owner: str, rid: str, value: bytes) -> None:
        key, now = self._key(owner, rid), time.time()
        async with self.redis.pipeline(transaction=True) as tx:
            tx.set(key, value, px=self.cfg.ttl_ms)
            tx.zadd(self.INDEX, {key: now})
            tx.zremrangebyscore(self.INDEX, "-inf", now - self.cfg.ttl_ms / 1000)
            tx.zcard(self.INDEX)
            count = (await tx.execute())[-1]
        excess = int(count) - self.cfg.max_responses
        if excess > 0:
            popped: list[tuple[bytes, float]] = await self.redis.zpopmin(  # type: ignore[assignment]
                self.INDEX, excess)
            if popped:
                await self.redis.delete(*(k for k, _ in popped))

    async def get(self, owner: str, rid: str) -> bytes | None:
        raw = await self.redis.get(self._key(owner, rid))
        return raw if isinstance(raw, bytes) else None

    async def delete(self, owner: str, rid: str) -> bool:
        key = self._key(owner, rid)
        async with self.redis.pipeline(transaction=True) as tx:
            tx.delete(key)
            tx.zrem(self.INDEX, key)
            gone, _ = await tx.execute()
        return bool(gone)


def install(app: web.Application, cfg: ResponsesConfig, redis: Redis | None = None
            ) -> Responses | None:
    """The role's store (app[keys.RESPONSES]), opened and closed with the app: in Redis when
    the role has one (the edge's farm mode), else SQLite under --data-dir. None when
    responses.store is off: the role then keeps no state and relays /v1/responses as is."""
    if not cfg.store:
        return None
    backend: Backend = (RedisBackend(redis, cfg) if redis is not None
                        else SqliteBackend(data_file(app, "responses.db"), cfg))
    store = app[keys.RESPONSES] = Responses(backend, cfg)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        yield
        await store.close()
    app.cleanup_ctx.append(lifecycle)
    return store
