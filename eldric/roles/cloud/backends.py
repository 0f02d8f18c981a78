"""The cloud worker's backends at run time: resolved type, URL, key; models; health.
What differs between backend types is their kind's (kinds.PROVIDER_KINDS)."""

from __future__ import annotations

import difflib
import functools
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
import structlog
from aiohttp import web

from eldric import keys
from eldric.backends.call import probe as native_probe
from eldric.backends.options import check as check_options
from eldric.backends.table import rows as table_rows
from eldric.bus import Bus, UpstreamState
from eldric.bus.prober import HEALTHY, PROBE_FAILED, Prober, Verdict, on_bus
from eldric.errors import ConfigError, error_json
from eldric.roles.cloud.config import BackendSpec
from eldric.roles.cloud.kinds import PROVIDER_KINDS, ProviderKind
from eldric.roles.cloud.providers import KNOWN, known
from eldric.stream import UpstreamFailure
from eldric.wire.vision import Vision

log = structlog.get_logger("eldric.cloud")


def mask(key: str | None) -> str | None:
    """What any endpoint shows of a key: never more than its last four characters."""
    if not key:
        return None
    return "…" + key[-4:] if len(key) > 12 else "…"


def resolve_key(spec: BackendSpec, env: dict[str, str]) -> str | None:
    key = spec.api_key
    if key and key.startswith("$"):
        var = key[1:]
        if var not in env:
            raise ConfigError(f"backend {spec.name!r}: environment variable {var} is not set")
        return env[var]
    if key:
        return key
    provider = known(spec.name)
    return env.get(provider.env) if provider and provider.env else None


@dataclass(eq=False)
class Backend:
    name: str
    type: str  # a PROVIDER_KINDS key
    kind: ProviderKind
    url: str  # OpenAI-compatible: base before /chat/completions; anthropic/ollama/azure: root
    key: str | None
    priority: int
    enabled: bool
    extra_headers: dict[str, str]
    api_version: str
    state: UpstreamState
    models: list[str] = field(default_factory=list)
    models_error: str | None = None  # the last model-list fetch failed (last list kept)
    auth_failed: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)  # a native kind's adapter options
    vision: Vision = field(default_factory=Vision)  # which models take images (options.vision)

    @property
    def status(self) -> str:
        """healthy; degraded: it answers, but its model list failed (the last list is
        kept, and it stays routable); unhealthy: unreachable, 5xx, or its key refused."""
        if not self.state.healthy:
            return "unhealthy"
        return "degraded" if self.models_error else "healthy"

    @property
    def openai_base(self) -> str:
        """Where the core sends /chat/completions, /completions, /embeddings."""
        return self.kind.route(self, "", "")[0]

    def auth_headers(self) -> dict[str, str]:
        """The configured extra headers, then those carrying the key (the kind's)."""
        return {**self.extra_headers, **self.kind.auth(self)}

    def key_refused(self, status: int) -> UpstreamFailure:
        """The backend refused eldric's own key: not the client's fault, so not its 401.
        A 502 the caller may fail over from; auth_failed shows until a probe passes."""
        self.auth_failed = True
        return UpstreamFailure(self.state.id, "connect", 502, error_json(
            502, f"backend {self.name} refused its API key (HTTP {status})",
            code="backend_auth_failed"))

    def public(self) -> dict:
        return {"name": self.name, "type": self.type, "url": self.url, "priority": self.priority,
                "enabled": self.enabled, "api_key": mask(self.key),
                "status": self.status, "healthy": self.status == "healthy",
                "auth_failed": self.auth_failed,
                "models": self.models, "models_error": self.models_error,
                "latency_ms": self.state.latency_ms, "last_check": self.state.last_check,
                "last_error": self.state.last_error, "requests": self.state.requests,
                "failures": self.state.failures}


def _vision_of(name: str, kind: ProviderKind) -> bool | None:
    """The table's word on a backend's vision: its row's (a preset named as the backend,
    `groq`), else its native adapter's, else unknown (sent; the model decides)."""
    row = table_rows().get(name)
    if row is not None and row.vision is not None:
        return row.vision
    return kind.adapter.vision if kind.adapter is not None else None


def _unknown_name(name: str) -> str:
    """What a name without a URL that is no known provider is: a kind listed as having no
    server API (lcm), a misspelt name, or an endpoint whose URL is missing."""
    row = table_rows().get(name)
    if row is not None and not row.available:
        return (f"backend {name!r}: {row.label} has no public server API eldric could speak "
                "to; a deployed server is reached with type template (its request and reply "
                "templates in options; see docs/backends.md)")
    close = difflib.get_close_matches(name, [*KNOWN, *PROVIDER_KINDS], n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (f"backend {name!r}: not a known provider name ({hint}`eldric backends` lists "
            "them); or give its url (and type, if not openai_compatible)")


def make_backend(spec: BackendSpec, bus: Bus, env: dict[str, str]) -> Backend:
    provider = known(spec.name)
    # A known name brings its type; any other endpoint with a URL speaks OpenAI's API.
    btype = spec.type or (provider.type if provider else ("openai_compatible" if spec.url else None))
    if btype is None:
        raise ConfigError(_unknown_name(spec.name))
    url = spec.url or (provider.url if provider and provider.type == btype else None)
    if not url:
        raise ConfigError(f"backend {spec.name!r}: no url")
    kind = PROVIDER_KINDS[btype]
    url = url.rstrip("/")
    if kind.root and url.endswith("/v1"):
        url = url[:-3]  # it takes its root; eldric adds /v1/…
    try:
        vision = Vision.of_option(spec.options.get("vision"), _vision_of(spec.name, kind),
                                  f"backend {spec.name}")
        key = resolve_key(spec, env)
        check_options(btype if kind.adapter else "an OpenAI-compatible backend",
                      kind.adapter, spec.options, key)
    except ValueError as exc:
        raise ConfigError(f"backend {spec.name!r}: {exc}") from None
    state = bus.upstream(f"backend:{spec.name}", url, role="cloud", healthy=False)
    return Backend(name=spec.name, type=btype, kind=kind, url=url, key=key,
                   priority=spec.priority, enabled=spec.enabled,
                   extra_headers=dict(spec.headers), api_version=spec.api_version, state=state,
                   options=dict(spec.options), vision=vision)


# ---------------------------------------------------------------- model lists and probes


# The URL already names an API version (…/v1, …/v1beta): adding /v1 would be wrong.
_VERSIONED = re.compile(r"/v\d+[a-z0-9]*$")


async def _get(app: web.Application, url: str, headers: dict[str, str],
               timeout: float) -> tuple[int, bytes]:
    async with app[keys.SESSION].get(url, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as r:
        return r.status, await r.read()


# One request of a probe; the model list and the /v1 try make two.
PROBE_TIMEOUT = 10.0


async def probe(app: web.Application, b: Backend) -> Verdict:
    """Fetch the model list: it is the catalog refresh and the health check in one.
    401/403 means the key is refused (auth_failed); 5xx or no answer, unhealthy; any
    other failure, degraded (it answers; the last list is kept)."""
    if b.kind.adapter is not None:
        return await _probe_native(app, b)
    url, headers = b.kind.models_request(b)
    t0 = time.perf_counter()
    try:
        status, raw = await _get(app, url, headers, PROBE_TIMEOUT)
    except PROBE_FAILED as exc:
        b.models_error = f"unreachable: {type(exc).__name__}"
        return Verdict(False, b.models_error)
    if status == 404 and b.kind.find_v1 and not _VERSIONED.search(b.url):
        status, raw = await _try_v1(app, b, headers, (status, raw))
    b.state.last_check = time.time()
    if status in (401, 403):
        b.auth_failed = True
        b.models_error = f"key refused (HTTP {status})"
        return Verdict(False, "auth_failed")
    b.auth_failed = False
    listed = b.options.get("models")
    if isinstance(listed, list) and status < 500:
        # The configured list, as it is: a kind with no model list (Perplexity, AI21, an
        # Azure ML endpoint: their rows' `models` is None), or one the operator narrows.
        # The request still probed reachability and the key.
        b.models, b.models_error = [str(m) for m in listed], None
        b.state.latency_ms = (time.perf_counter() - t0) * 1000
        return HEALTHY
    if status != 200:
        b.models_error = f"model list answered HTTP {status}"
        return Verdict(status < 500, b.models_error)
    try:
        b.models = b.kind.parse_models(raw)
        b.models_error = None
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        b.models_error = f"unreadable model list: {exc}"
    b.state.latency_ms = (time.perf_counter() - t0) * 1000
    return HEALTHY


async def _probe_native(app: web.Application, b: Backend) -> Verdict:
    """A native kind: its adapter's model list or health request (signed), else its
    configured `models` option; the verdicts as above."""
    assert b.kind.adapter is not None
    t0 = time.perf_counter()
    found = await native_probe(app, b.kind.adapter, b, PROBE_TIMEOUT)
    b.state.last_check = time.time()
    if found.status == 0:
        b.models_error = found.error
        return Verdict(False, found.error)
    if found.status in (401, 403):
        b.auth_failed = True
        b.models_error = f"key refused (HTTP {found.status})"
        return Verdict(False, "auth_failed")
    b.auth_failed = False
    if found.status != 200:
        b.models_error = found.error
        return Verdict(found.status < 500, found.error)
    if found.models is not None:
        b.models = found.models
    b.models_error = found.error
    b.state.latency_ms = (time.perf_counter() - t0) * 1000
    return HEALTHY


async def _try_v1(app: web.Application, b: Backend, headers: dict[str, str],
                  answer: tuple[int, bytes]) -> tuple[int, bytes]:
    """An OpenAI-compatible server given without its /v1 (a vLLM at http://host:8000):
    try where its API usually lives, and keep that URL if the list is there."""
    try:
        status, raw = await _get(app, b.url + "/v1/models", headers, PROBE_TIMEOUT)
    except PROBE_FAILED:
        return answer
    if status not in (200, 401, 403):  # the list, or a key check: the API is there
        return answer
    log.info("backend_url_adopted", backend=b.name, url=b.url + "/v1", given=b.url,
             reason=f"its /models answered 404, /v1/models {status}")
    b.url = b.state.url = b.url + "/v1"
    return status, raw


def prober(app: web.Application, backends: dict[str, Backend],
           interval: float) -> Prober[Backend]:
    """The enabled backends, every interval (the faster of the health and catalog
    periods: the model list is both)."""
    return Prober("cloud-probe", functools.partial(probe, app), interval=interval,
                  targets=lambda: [b for b in backends.values() if b.enabled],
                  timeout=2 * PROBE_TIMEOUT, mark=on_bus(app[keys.BUS], _state),
                  says="unreachable: ")


def _state(b: Backend) -> UpstreamState:
    return b.state


def environment() -> dict[str, str]:
    return dict(os.environ)
