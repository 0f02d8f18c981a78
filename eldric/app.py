"""Make one aiohttp app per chosen role and run them all in one uvloop event loop.

Each role gets its own app and port but shares the process's bus and client session.
Each port is served by the fast lane (eldric.serve): the role's hot POST routes are
answered there, every other request goes to the app through aiohttp's own handler.
SIGTERM/SIGINT: stop accepting, let in-flight requests (streams too) finish within the
grace period, then close.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from eldric import __version__, keys, model_registry, processes, readiness
from eldric import log as eldric_log
from eldric.bus import Bus
from eldric.bus.routes import add_routes
from eldric.config import ProcessConfig
from eldric.context import RoleInfo
from eldric.errors import ConfigError
from eldric.http import middleware
from eldric.log import USER_AGENT_PREFIX
from eldric.processes import Plan, refresh, supervisor
from eldric.readiness import Readiness
from eldric.registry import Role
from eldric.serve import aiohttp_glue, splice
from eldric.serve.server import FastServer, fast_routes
from eldric.stream.pool import ConnectionPool
from eldric.tasks import cancel, spawn

log = structlog.get_logger("eldric")

# Page assets the roles' pages share (the dashboards' base CSS and JS helpers).
SHARED_STATIC = Path(__file__).parent / "static"


def make_session() -> aiohttp.ClientSession:
    """The one pooled client session of the process (keep-alive to every upstream), for
    everything off the hot path (which has eldric.stream.client).

    auto_decompress is off so a reply's bytes pass through exactly as the upstream sent
    them; the connection limit is generous because backpressure is the router's job.
    """
    connector = aiohttp.TCPConnector(limit=4096, limit_per_host=0, ttl_dns_cache=300,
                                     keepalive_timeout=60)
    # eldric's own User-Agent: the peer's access log puts these requests (health checks,
    # syncs, heartbeats) at debug, not among the clients' (eldric.http).
    return aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False,
                                 headers={"User-Agent": f"{USER_AGENT_PREFIX}{__version__}"})


def advertise_url(cfg: Any, port: int, tls: bool = False) -> str:
    if cfg.advertise_url:
        return cfg.advertise_url.rstrip("/")
    host = cfg.bind_address
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def make_app(role: Role, cfg: Any, process: ProcessConfig, bus: Bus,
             session: aiohttp.ClientSession, pool: ConnectionPool, url: str,
             port: int = 0, local_url: str = "", plan: Plan | None = None) -> web.Application:
    app = web.Application(middlewares=[middleware], client_max_size=cfg.max_body_bytes)
    app[keys.BUS] = bus
    app[keys.SESSION] = session
    app[keys.UPSTREAM] = pool
    app[keys.PROCESS] = process
    app[keys.CONFIG] = cfg
    app[keys.STOPPING] = asyncio.Event()
    # `port` is the configured one (0 stays 0): it names the role's state files.
    info = app[keys.ROLE] = RoleInfo(name=role.name, advertise_url=url, port=port,
                                        local_url=local_url or url)
    if plan is not None and plan.n > 1:  # --processes (eldric.processes)
        app[keys.PLAN] = plan
        info.index, info.processes = plan.index, plan.n
        # a child uses the names its primary claimed (and holds): the same databases
        info.files.update(plan.files.get(role.name, {}))
        refresh.install(app)
    app.on_cleanup.append(_release_files)  # after the role's cleanup_ctx (stores closed)
    bus.metrics.active.labels(role.name).set_function(lambda: info.active)
    if process.otel_endpoint:
        _start_tracing(app, info, process)
    add_routes(app)
    # Shared page assets, served by every role app: roles never import each other, but
    # all may use eldric's own files. Added before the role's routes, so a role's own
    # /static/ prefix cannot shadow it.
    app.router.add_static("/static/eldric/", SHARED_STATIC)
    role.build(app, cfg)
    _mount_registry(app, role, cfg, process)
    return app


def _mount_registry(app: web.Application, role: Role, cfg: Any, process: ProcessConfig) -> None:
    """The model registry, on any role given --registry-dir (and on a role that keeps one
    by default). Its upload is the one route with its own body limits: the app's
    client_max_size (--max-body-size) applies only where a handler calls request.read()
    or post(), and read_body's --body-timeout only where read_body is called; the
    upload calls neither (eldric.model_registry.upload)."""
    directory = cfg.registry.dir
    if directory is None and role.registry_by_default:
        directory = os.path.join(process.data_dir, "registry")
    if directory is None:
        return
    admin, cluster = role.auth_keys(cfg) if role.auth_keys is not None else (None, None)
    model_registry.mount(app, directory, cfg.registry, admin_key=admin, cluster_key=cluster)


def _start_tracing(app: web.Application, info: RoleInfo, process: ProcessConfig) -> None:
    """The role's tracer (eldric.trace.otel), flushed and shut down at clean-up."""
    try:
        from eldric.trace import otel
    except ImportError as exc:
        raise ConfigError(f"--otel-endpoint needs the OpenTelemetry SDK: pip install "
                          f"'eldric[otel]' ({exc})") from None
    tracing = info.tracer = otel.setup(info.name, process.otel_endpoint,
                                       process.otel_protocol, process.otel_sample_ratio)

    async def shutdown(_app: web.Application) -> None:
        # the SDK's shutdown blocks while it exports what is queued (bounded by its
        # export timeout): in a thread, so other roles' clean-up goes on
        await asyncio.to_thread(tracing.shutdown)

    app.on_cleanup.append(shutdown)


async def _release_files(app: web.Application) -> None:
    app[keys.ROLE].release()


def bind_socket(host: str, port: int, *, shared: bool = False,
                join: bool = False) -> socket.socket:
    """Bind before building the app, so port 0 resolves to a real port the role can
    advertise (the worker registers that URL). --processes: the primary binds `shared`
    (SO_REUSEPORT once bound, before listening: its bind itself is exclusive, so it
    never joins a port another program holds with SO_REUSEPORT), its children `join` it;
    the kernel spreads the connections among them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if join:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(roles: Sequence[Role], configs: dict[str, Any], process: ProcessConfig,
                *, on_ready: Callable[[dict[str, str]], None] | None = None,
                on_readiness: Callable[[Readiness], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Run the roles until SIGTERM/SIGINT (or until `stop` is set, for embedding).

    on_ready(urls) is called once every role listens; on_readiness(Readiness) then, and
    again when every role says a request would succeed (eldric.readiness). With
    --processes N the first process also starts and supervises the other N-1
    (eldric.processes); they call neither."""
    plan = processes.plan(process.processes, roles, configs, os.environ)
    os.makedirs(process.data_dir, exist_ok=True)
    watch_primary = None
    if plan.child:
        watch_primary = supervisor.die_with_parent(plan.parent)
        structlog.contextvars.bind_contextvars(process=plan.index)
        on_ready = on_readiness = None
    elif plan.n > 1:
        plan.dir = tempfile.mkdtemp(prefix="eldric-processes-")  # 0700: ours alone
    bus = Bus()
    bus.roles = [r.name for r in roles]
    shared = (bus, make_session(), ConnectionPool())
    loop = asyncio.get_running_loop()
    install_signals = stop is None
    stop = stop or asyncio.Event()
    if install_signals:
        _install_signals(loop, stop, process)
    runners: list[web.AppRunner] = []
    fasts: list[FastServer] = []
    urls: dict[str, str] = {}
    apps: list[tuple[Role, web.Application]] = []
    watcher = children = None
    flusher = spawn(eldric_log.flush_periodically(), name="log-flush")
    try:
        for role in roles:
            app, urls[role.name] = await _start_role(role, configs[role.name], process, shared,
                                                     runners, fasts, plan)
            apps.append((role, app))
        if plan.n > 1 and not plan.child:
            children = supervisor.Supervisor(
                plan, {r.name: a[keys.ROLE].bound_port for r, a in apps},
                {r.name: dict(a[keys.ROLE].files) for r, a in apps})
            children.start()
        # Everything made at start-up lives as long as the process: move it out of the
        # collector's sight, and collect the young generation less often (a request
        # allocates many short-lived objects; measured ~4 us of CPU a request).
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 20, 20)
        if on_ready is not None:
            on_ready(urls)
        if on_readiness is not None:
            watcher = spawn(readiness.watch(apps, urls, on_readiness,
                                            process.ready_timeout_ms / 1000), name="readiness")
        await stop.wait()
    finally:
        await cancel(watcher)
        await cancel(watch_primary)
        grace = process.grace_period_ms / 1000
        if children is not None:  # they drain beside this one, within the same grace
            children.terminate()
            await asyncio.gather(_stop(fasts, runners, grace), children.wait(grace))
        else:
            await _stop(fasts, runners, grace)
        if plan.dir and not plan.child:
            shutil.rmtree(plan.dir, ignore_errors=True)
        await shared[1].close()
        shared[2].close()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("stopped")
        await cancel(flusher)
        eldric_log.flush()


def _install_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event,
                     process: ProcessConfig) -> None:
    """SIGTERM/SIGINT: stop gracefully; a second one: exit at once."""
    seen = 0

    def on_signal(signum: int) -> None:
        nonlocal seen
        seen += 1
        if seen > 1:
            log.warning("forced_exit", signal=signal.Signals(signum).name)
            os._exit(1)
        log.info("shutting_down", signal=signal.Signals(signum).name,
                 grace_period_ms=process.grace_period_ms)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)


async def _start_role(role: Role, cfg: Any, process: ProcessConfig,
                      shared: tuple[Bus, aiohttp.ClientSession, ConnectionPool],
                      runners: list[web.AppRunner], fasts: list[FastServer],
                      plan: Plan) -> tuple[web.Application, str]:
    """Bind, build, serve one role: (its app, the URL it answers on here). Its runner and
    fast server join the lists as soon as they exist, so a failure later still stops them."""
    want_port, ssl_context = role.listen(cfg) if role.listen else (cfg.port, None)
    # a child binds the port its primary did (so --port 0 is one port for all)
    sock = bind_socket(cfg.bind_address, plan.ports.get(role.name, want_port),
                       shared=plan.n > 1 and not plan.child, join=plan.child)
    port = sock.getsockname()[1]
    url = advertise_url(cfg, port, tls=ssl_context is not None)
    host = cfg.bind_address if cfg.bind_address not in ("0.0.0.0", "::") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    local = f"{'https' if ssl_context else 'http'}://{host}:{port}"
    app = make_app(role, cfg, process, *shared, url, want_port, local, plan)
    app[keys.ROLE].bound_port = port
    # handler_cancellation: a client that leaves (reset or FIN) cancels its handler, as
    # on the fast lane; the lane's keep-alive timeout, not aiohttp's default (which
    # differs between versions)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                           shutdown_timeout=process.grace_period_ms / 1000,
                           keepalive_timeout=cfg.keepalive_timeout_ms / 1000)
    await runner.setup()
    runners.append(runner)
    # The inference routes take the fast lane; everything else is handed to aiohttp
    # (eldric.serve).
    routes = fast_routes(app)
    if plan.child:  # what the lane does not take is the primary's (eldric.serve.splice)
        spliced: set[splice.Splice] = set()  # the drain waits for these too
        fast = FastServer(app, runner, routes, hand=splice.splicer(plan.sock(role.name), spliced),
                          splices=spliced)
    else:
        fast = FastServer(app, runner, routes)
    await fast.start(sock, ssl_context)
    fasts.append(fast)
    if plan.n > 1:
        # The private listener: in the primary, where the children splice to (each
        # connection opens with the client's address); in a child, where the primary asks
        # it for its own /metrics and /health.
        private = FastServer(app, runner, routes)
        await private.start_unix(plan.sock(role.name, plan.index or None),
                                 proxied=not plan.child, tls=ssl_context)
        fasts.append(private)
    log.info("listening", role=role.name, bind=f"{cfg.bind_address}:{port}",
             advertise_url=url, version=__version__)
    return app, local


async def _stop(fasts: list[FastServer], runners: list[web.AppRunner], grace: float) -> None:
    """Stop every listener first, tell the roles (STOPPING: members deregister, held
    long-polls answer), then wait for in-flight requests of all roles at once (both
    lanes), then run the roles' own clean-up."""
    for fast in fasts:
        fast.stop_listening()
    for runner in runners:
        runner.app[keys.STOPPING].set()
    await asyncio.gather(*(f.drain(grace) for f in fasts),
                         *(aiohttp_glue.drain(r, grace) for r in runners),
                         return_exceptions=True)
    await asyncio.gather(*(r.cleanup() for r in runners), return_exceptions=True)


def run(roles: Sequence[Role], configs: dict[str, Any], process: ProcessConfig,
        on_readiness: Callable[[Readiness], None] | None = None) -> None:
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        runner = asyncio.run
    try:
        runner(serve(roles, configs, process, on_readiness=on_readiness))
    except ConfigError as exc:
        print(f"eldric: {exc}", file=sys.stderr)
        sys.exit(2)
