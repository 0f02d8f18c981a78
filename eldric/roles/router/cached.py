"""The router's response cache (eldric.replycache) in its chat/completions route, after
the swarm's planning (a swarm's reply is not cached: its members are; see the design
notes), before routing. Imported only with --cache exact|semantic. Scope: the presented
key's digest (eldric.store.responses.owner_of), as the edge scopes by the same digest."""

from __future__ import annotations

from aiohttp import web

from eldric import keys
from eldric.auth import presented_key
from eldric.exchange import Answer, LaneRequest
from eldric.replycache import HEADER
from eldric.replycache.hop import PATHS, ReplyCache, answer
from eldric.roles.router.attempts import Attempts
from eldric.roles.router.context import RouteContext
from eldric.roles.router.state import ROUTER, RouterState
from eldric.store.responses import owner_of
from eldric.stream.sse import Tap


class _Marked(Attempts):
    """Attempts whose every reply, relayed or made here, says X-Eldric-Cache."""

    __slots__ = ("mark",)
    mark: str

    def among(self, candidates: list, body: bytes, ctx: RouteContext) -> None:
        Attempts.among(self, candidates, body, ctx)
        ctx.add_header(HEADER, self.mark)

    def headers(self) -> dict[str, str]:
        return {**Attempts.headers(self), HEADER: self.mark}


async def through_cache(request: LaneRequest, rs: RouterState, body: bytes,
                        model: str | None) -> Answer:
    from eldric.roles.router.handlers import route

    if request.path not in PATHS:
        return await route(request, body, model)

    async def send(tap: Tap | None, headers: dict[str, str]) -> Answer:
        def attempts(*args):  # type: ignore[no-untyped-def]
            tries = _Marked(*args)
            tries.mark = headers[HEADER]
            return tries
        return await route(request, body, model, tap, attempts)

    return await answer(rs.replies, request, body, owner_of(presented_key(request)), {}, None,
                        send)


def install(app: web.Application, rs: RouterState) -> None:
    from eldric.replycache.store import make_store

    cfg = rs.cfg.cache
    store = make_store(cfg)
    similar = None
    if cfg.mode == "semantic":
        from eldric.replycache.embed_hop import embedder
        from eldric.replycache.semantic import make

        similar = make(embedder(lambda: [w.url for w in rs.pool.routable()], cfg),
                       redis=getattr(store, "redis", None), threshold=cfg.similarity,
                       ttl_s=cfg.ttl_ms / 1000)
    rs.replies = ReplyCache(cfg, store, app[keys.BUS].metrics.registry, similar)

    async def close(app: web.Application) -> None:
        await app[ROUTER].replies.close()
    app.on_cleanup.append(close)
