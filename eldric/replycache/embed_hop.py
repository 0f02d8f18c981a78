"""The semantic matcher's `embed(texts) -> vectors`: POST /v1/embeddings through the
role's own upstreams (the edge's routers, the router's workers), in turn until one
answers; failures raise, which the matcher counts as a miss."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from eldric.replycache.config import CacheConfig


def embedder(urls: Sequence[str] | Callable[[], Sequence[str]], cfg: CacheConfig):
    import aiohttp

    from eldric.replycache.semantic import vectors

    session: list[aiohttp.ClientSession] = []

    async def embed(texts: list[str]) -> list[list[float]]:
        if not session:
            session.append(aiohttp.ClientSession())
        last: Exception | None = None
        for url in (urls() if callable(urls) else urls):
            try:
                async with session[0].post(url.rstrip("/") + "/v1/embeddings", json={
                        "model": cfg.embedding_model, "input": texts}) as r:
                    if r.status == 200:
                        return vectors(await r.json())
                    last = RuntimeError(f"{url}: {r.status}")
            except Exception as exc:  # the next upstream, as the role's failover would
                last = exc
        raise last or RuntimeError("no upstream to embed with")

    return embed
