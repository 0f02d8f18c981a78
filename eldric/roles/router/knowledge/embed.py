"""The embedding scorer: the theme whose centroid is nearest the prompt's embedding.

Off unless `embeddings_model` is set. Each theme's centroid is the mean of the
embeddings of its name with its keywords and of each example prompt, asked once of the
configured OpenAI-compatible /v1/embeddings (in batches) when the router starts, and
again later while that fails; until then, and whenever one call fails or outlasts its
deadline, a request routes as if the scorer were off (counted in /metrics). It is asked
only for prompts the keyword scorer leaves below its threshold, so its call costs only
those. The router never classifies /v1/embeddings requests, so the URL may be the
router's own without looping.
"""

from __future__ import annotations

import asyncio
import math
from operator import mul

import aiohttp
import msgspec
import structlog

from eldric.roles.router.knowledge.config import KnowledgeConfig
from eldric.roles.router.knowledge.themes import Theme

log = structlog.get_logger("eldric.router")

_BATCH = 64
_RETRY_S = 5.0


def _py_dot(a: list[float], b: list[float]) -> float:
    return sum(map(mul, a, b))


# Python 3.12's math.sumprod is the dot product in C (~1 ms for 213 centroids of 768
# dims); on 3.11 the pure-Python one takes ~18 ms, so it is cut into slices that let the
# event loop serve other requests in between.
_dot = getattr(math, "sumprod", _py_dot)
_SLICE = 32


class _Item(msgspec.Struct):
    embedding: list[float]
    index: int = 0


class _Reply(msgspec.Struct):
    data: list[_Item]


_decode = msgspec.json.Decoder(_Reply)


def embeddings_url(base: str) -> str:
    base = base.rstrip("/")
    if base.endswith("/embeddings"):
        return base
    return base + ("/embeddings" if base.endswith("/v1") else "/v1/embeddings")


def _unit(v: list[float]) -> list[float] | None:
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v] if norm > 0 else None


class EmbeddingScorer:
    def __init__(self, cfg: KnowledgeConfig, themes: list[Theme]) -> None:
        self.cfg = cfg
        self.themes = themes
        self.url = embeddings_url(cfg.embeddings_url or "")
        self.centroids: list[tuple[int, list[float]]] | None = None  # None: not ready
        self.headers = {"Authorization": f"Bearer {cfg.embeddings_api_key}"} \
            if cfg.embeddings_api_key else {}

    async def _embed(self, session: aiohttp.ClientSession, texts: list[str],
                     timeout: float | None) -> list[list[float]]:
        body = {"model": self.cfg.embeddings_model, "input": texts}
        async with session.post(self.url, json=body, headers=self.headers,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            raw = await r.read()
            if r.status != 200:
                raise ValueError(f"HTTP {r.status}: {raw[:200].decode('utf-8', 'replace')}")
        items = sorted(_decode.decode(raw).data, key=lambda d: d.index)
        if len(items) != len(texts) or len({len(d.embedding) for d in items}) != 1:
            raise ValueError("the embeddings do not match the inputs one to one")
        return [d.embedding for d in items]

    async def prepare(self, session: aiohttp.ClientSession) -> None:
        """Compute the centroids, retrying until it works (a background task)."""
        texts: list[str] = []
        owner: list[int] = []
        for i, t in enumerate(self.themes):
            for text in [f"{t.name}: {', '.join(t.keywords)}", *t.examples]:
                texts.append(text)
                owner.append(i)
        while True:
            try:
                vectors: list[list[float]] = []
                for at in range(0, len(texts), _BATCH):
                    vectors += await self._embed(session, texts[at:at + _BATCH], 60.0)
                sums: dict[int, list[float]] = {}
                for i, v in zip(owner, vectors):
                    s = sums.get(i)
                    sums[i] = list(v) if s is None else [a + b for a, b in zip(s, v)]
                self.centroids = [(i, u) for i, s in sums.items()
                                  if (u := _unit(s)) is not None]
                log.info("theme_centroids_ready", themes=len(self.centroids),
                         model=self.cfg.embeddings_model, dims=len(vectors[0]))
                return
            except (aiohttp.ClientError, TimeoutError, ValueError, msgspec.DecodeError) as exc:
                log.warning("theme_centroids_failed", url=self.url, retry_s=_RETRY_S,
                            error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(_RETRY_S)

    async def score(self, session: aiohttp.ClientSession, text: str,
                    top_k: int) -> list[tuple[Theme, float]] | str:
        """The nearest `top_k` themes with their cosine similarity, or why there are none
        ("not_ready", "timeout", "error")."""
        centroids = self.centroids
        if centroids is None:
            return "not_ready"
        try:
            async with asyncio.timeout(self.cfg.embeddings_timeout_ms / 1000):
                (v,) = await self._embed(session, [text], None)
        except TimeoutError:
            return "timeout"
        except (aiohttp.ClientError, ValueError, msgspec.DecodeError) as exc:
            log.warning("theme_embedding_failed", url=self.url,
                        error=f"{type(exc).__name__}: {exc}")
            return "error"
        u = _unit(v)
        if u is None or len(u) != len(centroids[0][1]):
            return "error"
        sims: list[tuple[float, int]] = []
        for at in range(0, len(centroids), _SLICE):
            sims += [(_dot(u, c), i) for i, c in centroids[at:at + _SLICE]]
            if _dot is _py_dot:
                await asyncio.sleep(0)  # let other requests run between slices
        sims.sort(reverse=True)
        return [(self.themes[i], round(s, 4)) for s, i in sims[:top_k]]
