"""The cache on a role's request path (edge: _to_routers; router: its chat route):
look up, serve a hit (whole, or as a stream for a streamed request), or let the request
go on as today with a Tap reading a streamed reply, and keep what came back complete.

A role that has the cache off never imports this (its check is `cache is not None`)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from eldric import keys
from eldric.exchange import Reply, encode_headers
from eldric.replycache import HEADER, Similar, Store
from eldric.replycache.config import CacheConfig
from eldric.replycache.key import digest, directives, refusal
from eldric.replycache.replies import Accumulator, as_stream
from eldric.replycache.store import MemoryStore, StoreDown

log = logging.getLogger("eldric.replycache")
PATHS = {"/v1/chat/completions": True, "/v1/completions": False}  # path -> is chat
Send = Callable[[Callable[[bytes], None] | None, dict[str, str]], Awaitable[Any]]


class ReplyCache:
    """One role's cache: its store, the semantic matcher (or None), its metrics."""

    def __init__(self, cfg: CacheConfig, store: Store, registry: Any,
                 similar: Similar | None = None) -> None:
        from prometheus_client import Counter, Gauge

        self.cfg, self.store, self.similar = cfg, store, similar
        self.ttl_s = cfg.ttl_ms / 1000
        self.requests = Counter("eldric_cache_requests_total",
                                "response cache lookups by result (hit, miss, bypass) and "
                                "kind (exact, semantic)", ["result", "kind"], registry=registry)
        for result in ("hit", "miss", "bypass"):
            self.requests.labels(result, "exact")
        self.down = Counter("eldric_cache_store_errors_total",
                            "store reads or writes that failed (each a bypass)",
                            registry=registry)
        entries = Gauge("eldric_cache_entries", "replies in the memory store",
                        registry=registry)
        size = Gauge("eldric_cache_bytes", "bytes of replies in the memory store",
                     registry=registry)
        if isinstance(store, MemoryStore):
            entries.set_function(lambda: len(store.entries))
            size.set_function(lambda: store.bytes)
        self.tasks: set[asyncio.Task] = set()
        self.warned = False

    def _down(self, exc: Exception) -> None:
        self.down.inc()
        if not self.warned:  # once, not per request: a Redis down is a storm of these
            self.warned = True
            log.warning("cache store unreachable, requests bypass the cache: %s", exc)

    async def close(self) -> None:
        for t in list(self.tasks):
            await t
        await self.store.close()
        if self.similar is not None:
            await self.similar.close()


async def answer(cache: ReplyCache, request: Any, body: bytes, scope: str,
                 headers: dict[str, str], tap: Callable[[bytes], None] | None, send: Send,
                 allowed: bool = True,
                 on_hit: Callable[[Any], Awaitable[dict[str, str]]] | None = None
                 ) -> Any:
    """The reply to a request on a cacheable path: from the store, or `send(tap, headers)`
    (the role's own way upstream) with what it returns kept when complete."""
    chat = PATHS[request.path]
    cfg = cache.cfg
    try:
        obj = json.loads(body)
    except ValueError:
        obj = None
    why = "client opted out" if not allowed else refusal(
        cfg, obj, obj.get("model") if isinstance(obj, dict) else None)
    look, keep = directives(request.headers.get("Cache-Control"))
    if why is not None or not look:
        cache.requests.labels("bypass", "exact").inc()
        return await send(tap, {**headers, HEADER: "bypass"})
    assert isinstance(obj, dict)
    key = digest(request.path, obj, "shared" if cfg.shared else scope)
    stream = obj.get("stream") is True
    opts = obj.get("stream_options")
    include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
    kind, probe = "exact", None
    try:
        found = await cache.store.get(key)
        if found is None and cache.similar is not None and chat:
            from eldric.replycache.semantic import probe as semantic_probe

            probe = semantic_probe(obj, "shared" if cfg.shared else scope, cfg.max_turns)
            if probe is not None:
                near = await cache.similar.find(probe[0], obj["model"], probe[1])
                if near is not None and (found := await cache.store.get(near)) is not None:
                    kind = "semantic"
    except StoreDown as exc:
        cache._down(exc)
        cache.requests.labels("bypass", "exact").inc()
        return await send(tap, {**headers, HEADER: "bypass"})
    if found is not None:
        cache.requests.labels("hit", kind).inc()
        reply = json.loads(found)
        if stream:
            data, kind_type = as_stream(reply, chat, include_usage), "text/event-stream"
        else:
            data, kind_type = found, "application/json"
        if on_hit is not None:  # counted (may refuse: a budget), its headers for the reply
            headers = {**headers, **await on_hit(Reply(200, [], found))}
        hop = request[keys.HOP]
        out = encode_headers({**headers, "Content-Type": kind_type, HEADER: "hit"})
        out.append((b"X-Request-ID", hop.request_id.encode()))
        return hop.lane.reply(request, 200, out, data)
    cache.requests.labels("miss", "exact").inc()
    acc = Accumulator() if stream and keep else None
    if acc is not None:
        tap = acc if tap is None else _both(tap, acc)
    resp = await send(tap, {**headers, HEADER: "miss"})
    if keep:
        made = acc.whole(chat) if acc is not None else None
        kept = (json.dumps(made, separators=(",", ":")).encode() if made is not None
                else None if acc is not None else _whole(resp, chat))
        if kept is not None:
            if len(kept) <= cfg.max_entry_bytes:
                task = asyncio.create_task(_put(cache, key, kept, obj["model"], probe))
                cache.tasks.add(task)
                task.add_done_callback(cache.tasks.discard)
    return resp


async def _put(cache: ReplyCache, key: str, data: bytes, model: str,
               probe: tuple[str, str] | None) -> None:
    try:
        await cache.store.put(key, data, cache.ttl_s)
        if probe is not None and cache.similar is not None:
            await cache.similar.remember(probe[0], model, probe[1], key)
    except StoreDown as exc:
        cache._down(exc)
    except Exception:  # never the client's: a cache that cannot keep is only a miss
        log.exception("cache put failed")


def _whole(resp: Any, chat: bool) -> bytes | None:
    """A whole 200 JSON reply whose every choice finished, as its bytes; else None."""
    if getattr(resp, "status", None) != 200:
        return None
    body = resp.body if isinstance(resp, Reply) else getattr(resp, "body", None)
    if not isinstance(body, bytes):
        return None
    try:
        reply = json.loads(body)
    except ValueError:
        return None
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not choices or any(not isinstance(c, dict) or not c.get("finish_reason")
                          for c in choices):
        return None
    return body


def _both(first: Callable[[bytes], None], second: Callable[[bytes], None]):
    def tap(event: bytes) -> None:
        first(event)
        second(event)
    return tap
