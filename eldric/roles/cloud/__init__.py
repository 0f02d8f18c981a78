"""The cloud role: many cloud providers behind one OpenAI endpoint, routed by model (8889)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from eldric import keys
from eldric.cluster.membership import Membership
from eldric.errors import ConfigError
from eldric.registry import Role
from eldric.roles.cloud.backends import environment, make_backend, prober
from eldric.roles.cloud.config import CloudConfig
from eldric.roles.cloud import models as model_api
from eldric.roles.cloud import ollama_api
from eldric.roles.cloud.handlers import add_routes, cloud_health, waiting_for
from eldric.roles.cloud.kinds import described
from eldric.roles.cloud.metrics import CloudMetrics
from eldric.roles.cloud.providers import providers_with_keys
from eldric.roles.cloud.state import CLOUD, CloudState
from eldric.store.responses import install
from eldric.stream import Timeouts
from eldric.tasks import cancel, spawn

log = structlog.get_logger("eldric.cloud")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    cs = app[CLOUD]
    cs.membership = Membership.of(app, cs.cfg, "cloud")
    cs.membership.load_id()
    probes = app[keys.PROBER]
    await probes.round()
    probes.start()
    tasks = []
    if cs.cfg.controller_url:
        tasks.append(spawn(cs.membership.run(), name="cloud-registration"))
    log.info("cloud_ready", backends={b.name: b.state.healthy for b in cs.backends.values()},
             models=len(cs.models()), worker_id=cs.membership.worker_id)
    for b in cs.backends.values():
        if b.state.healthy and not b.models:  # Perplexity, AI21: their APIs list none
            log.warning("backend_lists_no_models", backend=b.name,
                        check="it answers but lists no models, so none is routed to it by "
                              "name: give its options.models in the config file "
                              f"(docs/backends.md), or ask for {b.name}/MODEL")
    yield
    await probes.stop()
    for task in tasks:
        await cancel(task)


def build(app: web.Application, cfg: CloudConfig) -> None:
    env = environment()
    backends = {}
    for spec in cfg.backends:
        if spec.name in backends:
            raise ConfigError(f"two backends are named {spec.name!r}")
        backends[spec.name] = make_backend(spec, app[keys.BUS], env)
    if cfg.default_backend and cfg.default_backend not in backends:
        raise ConfigError(f"--default-backend {cfg.default_backend!r} is not one of the backends")
    app[CLOUD] = CloudState(cfg=cfg, timeouts=Timeouts.from_config(cfg), backends=backends,
                            metrics=CloudMetrics(app[keys.BUS].metrics.registry), env=env)
    # The health probe is the model-list call, so the faster of the two periods drives it.
    period = min(cfg.health_check_interval_ms, cfg.refresh_interval_ms) / 1000
    app[keys.PROBER] = prober(app, backends, period)
    app[keys.HEALTH] = cloud_health
    app.cleanup_ctx.append(_lifecycle)
    install(app, cfg.responses)  # the /v1/responses store (eldric.store.responses)
    add_routes(app)
    ollama_api.add_routes(app)
    model_api.add_routes(app)  # /api/v1/models/* on its Ollama (eldric.modelops)


ROLE = Role(
    name="cloud",
    port=8889,
    config=CloudConfig,
    build=build,
    waiting_for=waiting_for,
    description="many cloud providers behind one OpenAI endpoint, routed by model name",
    # The quick start runs it only when provider keys are in the environment, with those
    # providers as its backends; it then registers with the local controller, and the
    # router routes their models.
    in_all=bool(providers_with_keys()),
    quickstart={"bind_address": "127.0.0.1", "controller_url": "http://127.0.0.1:8880",
                "heartbeat_interval_ms": 5000,
                "backends": [{"name": n} for n in providers_with_keys()]},
    links=(("the cloud dashboard", "/dashboard"),),
    auth_keys=lambda cfg: (cfg.admin_key, cfg.api_key),
    kinds=described,
)
