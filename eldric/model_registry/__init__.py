"""The model registry: model files kept by a role, for the fleet to install from.

Any role serves it when given --registry-dir (the controller by default, at
DATA_DIR/registry): GET /api/v1/model-registry, POST …/upload (streamed, eldric's one
route with its own body limits: upload.py), GET|DELETE …/{id}, GET …/{id}/download
(Range, ETag = sha256). Other code of the same role (the controller's distribute) reaches
it through app[keys.MODEL_REGISTRY]: `get(ref)` for a model's size, sha256 and path,
`registry_path(ref)` for its file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from eldric import keys
from eldric.config import RegistryConfig
from eldric.model_registry.routes import GUARD, Guard, add_routes
from eldric.model_registry.store import ModelRegistry

__all__ = ["ModelRegistry", "mount"]


def mount(app: web.Application, directory: str, cfg: RegistryConfig, *,
          admin_key: str | None, cluster_key: str | None) -> ModelRegistry:
    registry = app[keys.MODEL_REGISTRY] = ModelRegistry(directory, cfg)
    app[GUARD] = Guard(admin_key, cluster_key)
    add_routes(app)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        registry.load()
        yield

    app.cleanup_ctx.append(lifecycle)
    return registry
