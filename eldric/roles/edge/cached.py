"""The edge's response cache (eldric.replycache) in front of its routers: imported only
with --cache exact|semantic. Keyed by what goes upstream (after the plugins' inlet),
scoped by the client's key digest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from eldric import keys
from eldric.exchange import Answer, LaneRequest
from eldric.replycache.hop import PATHS, ReplyCache, answer
from eldric.roles.edge.clients import Client
from eldric.roles.edge.state import EDGE, EdgeState
from eldric.stream.sse import Tap

Relayed = Callable[..., Awaitable[Answer]]


async def through_cache(request: LaneRequest, es: EdgeState, client: Client | None,
                        body: bytes, tap: Tap | None, headers: dict[str, str],
                        relayed: Relayed, counted_hit: Callable[..., Awaitable[dict[str, str]]]
                        ) -> Answer:
    if request.path not in PATHS or request.method != "POST":
        return await relayed(request, es, client, body, tap, headers)
    scope = (client.key_hash or client.name) if client is not None else "anonymous"

    async def send(tap: Tap | None, headers: dict[str, str]) -> Answer:
        return await relayed(request, es, client, body, tap, headers)

    async def on_hit(whole: Answer) -> dict[str, str]:  # counted as the client's, a hit
        return await counted_hit(request, es, client, body, whole)

    return await answer(es.cache, request, body, scope, headers, tap, send,
                        allowed=client is None or client.cache is not False, on_hit=on_hit)


def install(app: web.Application, es: EdgeState, redis) -> None:  # type: ignore[no-untyped-def]
    """The cache made at build (its store; the semantic matcher when asked), closed at
    the app's cleanup."""
    from eldric.replycache.store import RedisStore, make_store

    cfg = es.cfg.cache
    if cfg.store == "redis" and not cfg.redis_url and redis is not None:
        store = RedisStore(redis, owned=False)  # the edge's own connection (--redis-url)
    else:
        store = make_store(cfg, es.cfg.redis_url)
    similar = None
    if cfg.mode == "semantic":
        from eldric.replycache.embed_hop import embedder
        from eldric.replycache.semantic import make

        urls = [s.url for s in es.routers.states]
        similar = make(embedder(urls, cfg), redis=getattr(store, "redis", None),
                       threshold=cfg.similarity, ttl_s=cfg.ttl_ms / 1000)
    es.cache = ReplyCache(cfg, store, app[keys.BUS].metrics.registry, similar)

    async def close(app: web.Application) -> None:
        await app[EDGE].cache.close()
    app.on_cleanup.append(close)

