"""install() loads the themes (the shipped file or --themes, refused at start when bad),
serves /api/v1/knowledge/* whether routing on themes is on or not (to try a themes file
before routing on it), and puts the Narrower in the router's thinking when it is on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from eldric import keys
from eldric.errors import ConfigError
from eldric.roles.router.knowledge import api, themes
from eldric.roles.router.knowledge.config import KnowledgeConfig
from eldric.roles.router.knowledge.narrow import Knowledge
from eldric.roles.router.thinking import Thinking
from eldric.tasks import cancel, spawn


def install(app: web.Application, cfg: KnowledgeConfig, thinking: Thinking) -> None:
    if cfg.embeddings_model and not cfg.embeddings_url:
        raise ConfigError("--theme-embeddings-model needs --theme-embeddings-url "
                          "(knowledge.embeddings_url): where the model is served")
    url = cfg.embeddings_url or ""
    if cfg.embeddings_model and not url.startswith(("http://", "https://")):
        raise ConfigError(f"--theme-embeddings-url {url!r}: an http:// or https:// URL "
                          "of an OpenAI-compatible server")
    loaded, source = themes.load(cfg.themes)
    k = app[api.KNOWLEDGE] = Knowledge(app, cfg, loaded, source)
    api.add_routes(app)
    if cfg.enabled:
        thinking.knowledge = k
        thinking.update()
    if k.embeddings is not None:
        async def centroids(app: web.Application) -> AsyncIterator[None]:
            task = spawn(k.embeddings.prepare(app[keys.SESSION]),  # type: ignore[union-attr]
                         name="theme-centroids")
            yield
            await cancel(task)

        app.cleanup_ctx.append(centroids)
