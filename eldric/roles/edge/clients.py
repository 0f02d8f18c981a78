"""API keys and the clients they belong to.

Keys are never stored: only their SHA-256. A key is shown once, in the reply that creates
it. Lookup hashes the presented key and compares digests in constant time.

Two stores behind one interface: ``LocalClients`` (SQLite under --data-dir, served from
memory) and ``RedisClients`` (farm mode: every edge reads the same hashes, so a key
revoked on one edge stops working on all of them at once).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import msgspec

from eldric.auth import hash_key
from eldric.errors import ConfigError
from eldric.store.sqlite import Store

if TYPE_CHECKING:
    from eldric.roles.edge.config import ClientSettings

if TYPE_CHECKING:  # farm mode only: redis is an optional dependency
    from redis.asyncio import Redis


# What a key may do (issue 18): "inference" the /v1 APIs, "register" register workers
# and open tunnels through the edge, "cluster" call a tunnelled worker (a router's key).
SCOPES = ("inference", "register", "cluster")
DEFAULT_SCOPES = ("inference",)  # a client made before scopes existed, or without any


class Client(msgspec.Struct, omit_defaults=True):
    name: str
    description: str = ""
    rpm: int | None = None
    created: float = 0.0
    static: bool = False  # from the config or --api-key: cannot be revoked at run time
    key_hash: str = ""  # never sent to anyone
    scopes: list[str] | None = None  # None: DEFAULT_SCOPES
    # Budgets (issue 19); None: no limit of that kind.
    tpm: int | None = None  # tokens per rate window (prompt + completion)
    max_tokens_per_day: int | None = None
    max_cost_per_day: float | None = None  # in the price table's currency (USD)
    max_cost_per_month: float | None = None
    allowed_models: list[str] | None = None  # glob patterns; None: every model
    cache: bool | None = None  # the response cache: False opts out, None as configured

    def may(self, scope: str) -> bool:
        return scope in (self.scopes if self.scopes is not None else DEFAULT_SCOPES)

    def public(self) -> dict:
        return {"name": self.name, "description": self.description, "rpm": self.rpm,
                "created": self.created, "static": self.static,
                "scopes": list(self.scopes if self.scopes is not None else DEFAULT_SCOPES),
                "tpm": self.tpm, "max_tokens_per_day": self.max_tokens_per_day,
                "max_cost_per_day": self.max_cost_per_day,
                "max_cost_per_month": self.max_cost_per_month,
                "allowed_models": self.allowed_models, "cache": self.cache}


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Client)


def new_key() -> str:
    return "sk-eldric-" + secrets.token_urlsafe(32)


class StaticClient(Exception):
    """A client from the configuration: changed there, not at run time."""


def unknown_scope(scopes: list[str] | None) -> str | None:
    """The first scope that is none of SCOPES."""
    return next((s for s in scopes or () if s not in SCOPES), None)


def static_clients(static: Mapping[str, str],
                   settings: Mapping[str, ClientSettings] | None = None) -> dict[str, Client]:
    """The config's clients by key hash: key -> name (auth.api_keys, --api-key), each with
    its auth.clients settings. A setting for no such client, or an unknown scope, stops
    the start (a typo would otherwise leave a client unlimited)."""
    settings = settings or {}
    names = set(static.values())
    for name, s in settings.items():
        if name not in names:
            raise ConfigError(f"auth.clients: {name!r} is no client of auth.api_keys or "
                              f"--api-key (clients: {', '.join(sorted(names)) or 'none'})")
        if (scope := unknown_scope(s.scopes)) is not None:
            raise ConfigError(f"auth.clients.{name}.scopes: unknown scope {scope!r} "
                              f"(scopes: {', '.join(SCOPES)})")
    out = {}
    for key, name in static.items():
        given = settings.get(name)
        extra = msgspec.structs.asdict(given) if given is not None else {}
        out[hash_key(key)] = Client(name=name, static=True, key_hash=hash_key(key), **extra)
    return out


def _match(found: Client | None, digest: str) -> Client | None:
    if found is not None and hmac.compare_digest(found.key_hash, digest):
        return found
    return None


class Clients(Protocol):
    """What the edge asks of its client store (LocalClients, RedisClients). Farm mode
    also pings RedisClients.redis while Redis is unreachable."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    def lookup_static(self, key: str) -> Client | None: ...
    async def lookup(self, key: str) -> Client | None: ...
    async def create(self, name: str, description: str, rpm: int | None,
                     **fields: object) -> tuple[Client, str]: ...
    async def all(self) -> list[Client]: ...
    async def revoke(self, name: str) -> bool | None: ...
    async def update(self, name: str, changes: dict[str, object]) -> Client: ...


class LocalClients:
    """Static keys from the config, plus clients created at run time (kept in SQLite)."""

    def __init__(self, store: Store, static: dict[str, str],
                 settings: Mapping[str, ClientSettings] | None = None) -> None:
        self.store = store
        self.by_hash: dict[str, Client] = {}
        self.by_name: dict[str, Client] = {}
        for client in static_clients(static, settings).values():
            self._add(client)

    def _add(self, client: Client) -> None:
        self.by_hash[client.key_hash] = client
        self.by_name[client.name] = client

    async def open(self) -> None:
        await self.store.open()
        await self.reload()

    async def reload(self) -> None:
        """The clients created at run time, read again (--processes: a child, after its
        primary's admin API created, changed or revoked one)."""
        rows = await self.store.all("clients")
        for client in [c for c in self.by_name.values() if not c.static]:
            del self.by_name[client.name]
            self.by_hash.pop(client.key_hash, None)
        for _name, raw in rows:
            self._add(_dec.decode(raw))

    async def close(self) -> None:
        await self.store.close()

    def lookup_static(self, key: str) -> Client | None:
        """Static keys only (the config's), as RedisClients.lookup_static."""
        found = self.by_hash.get(digest := hash_key(key))
        return _match(found if found is not None and found.static else None, digest)

    async def lookup(self, key: str) -> Client | None:
        digest = hash_key(key)
        return _match(self.by_hash.get(digest), digest)

    async def create(self, name: str, description: str, rpm: int | None,
                     **fields: object) -> tuple[Client, str]:
        """`fields`: the Client's other settings (scopes, tpm, max_tokens_per_day, …)."""
        if name in self.by_name:
            raise KeyError(name)
        key = new_key()
        client = Client(name=name, description=description, rpm=rpm, created=time.time(),
                        key_hash=hash_key(key), **fields)  # type: ignore[arg-type]
        await self.store.write("clients", [(name, _enc.encode(client))])
        self._add(client)
        return client, key

    async def all(self) -> list[Client]:
        return list(self.by_name.values())

    async def revoke(self, name: str) -> bool | None:
        """True if revoked, False if unknown, None if it is a static (config) key."""
        client = self.by_name.get(name)
        if client is None:
            return False
        if client.static:
            return None
        await self.store.write("clients", deletes=[name])
        del self.by_name[name]
        self.by_hash.pop(client.key_hash, None)
        return True

    async def update(self, name: str, changes: dict[str, object]) -> Client:
        """The client with `changes` (Client fields) made; KeyError when unknown,
        StaticClient when it is the configuration's."""
        client = self.by_name.get(name)
        if client is None:
            raise KeyError(name)
        if client.static:
            raise StaticClient(name)
        client = msgspec.structs.replace(client, **changes)
        await self.store.write("clients", [(name, _enc.encode(client))])
        self._add(client)
        return client


class RedisClients:
    """Farm mode: clients in Redis, read on every lookup (so revocation is immediate on
    every edge). Static keys from the config stay in memory: every edge has the config."""

    KEYS = "eldric:keys"  # key hash -> client JSON
    NAMES = "eldric:clients"  # client name -> key hash

    def __init__(self, redis: Redis, static: dict[str, str],
                 settings: Mapping[str, ClientSettings] | None = None) -> None:
        self.redis = redis
        self.static = static_clients(static, settings)

    async def open(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        await self.redis.aclose()

    def lookup_static(self, key: str) -> Client | None:
        """Static keys only: what can still be verified while Redis is unreachable."""
        digest = hash_key(key)
        return _match(self.static.get(digest), digest)

    async def lookup(self, key: str) -> Client | None:
        digest = hash_key(key)
        found = self.static.get(digest)
        if found is None:
            raw = await self.redis.hget(self.KEYS, digest)
            found = _dec.decode(raw) if raw else None
        return _match(found, digest)

    async def create(self, name: str, description: str, rpm: int | None,
                     **fields: object) -> tuple[Client, str]:
        if any(c.name == name for c in self.static.values()):
            raise KeyError(name)
        key = new_key()
        client = Client(name=name, description=description, rpm=rpm, created=time.time(),
                        key_hash=hash_key(key), **fields)  # type: ignore[arg-type]
        # HSETNX claims the name atomically: two edges cannot create the same client.
        if not await self.redis.hsetnx(self.NAMES, name, client.key_hash):
            raise KeyError(name)
        await self.redis.hset(self.KEYS, client.key_hash, _enc.encode(client))
        return client, key

    async def all(self) -> list[Client]:
        raws = await self.redis.hvals(self.KEYS)
        return [*self.static.values(), *(_dec.decode(r) for r in raws)]

    async def revoke(self, name: str) -> bool | None:
        if any(c.name == name for c in self.static.values()):
            return None
        digest = await self.redis.hget(self.NAMES, name)
        if digest is None:
            return False
        async with self.redis.pipeline(transaction=True) as tx:
            tx.hdel(self.KEYS, digest)
            tx.hdel(self.NAMES, name)
            await tx.execute()
        return True

    async def update(self, name: str, changes: dict[str, object]) -> Client:
        from redis.exceptions import WatchError

        if any(c.name == name for c in self.static.values()):
            raise StaticClient(name)
        # WATCH: two edges changing the same client at once do not lose either change
        # (the second is made on the first's result), and a revoke in between wins.
        async with self.redis.pipeline(transaction=True) as tx:
            while True:
                try:
                    await tx.watch(self.NAMES, self.KEYS)
                    digest = await tx.hget(self.NAMES, name)
                    raw = await tx.hget(self.KEYS, digest) if digest is not None else None
                    if raw is None:
                        await tx.unwatch()
                        raise KeyError(name)
                    client = msgspec.structs.replace(_dec.decode(raw), **changes)
                    tx.multi()
                    tx.hset(self.KEYS, digest, _enc.encode(client))
                    await tx.execute()
                    return client
                except WatchError:
                    continue
