"""The OpenTelemetry side of eldric.trace: imported only when --otel-endpoint is given.

One TracerProvider per role (service.name ``eldric-<role>``: in Jaeger each hop is its
own service, which is what an operator looks for), sampling ParentBased(TraceIdRatio):
the first hop decides, every later hop follows the sampled flag of the traceparent it
was given. Spans go out through a BatchSpanProcessor (a bounded queue, exported from the
SDK's own thread), so a collector that is slow or down never holds a request: spans past
the queue are dropped, and failed exports are counted and logged once (``_Counting``).

Spans here:
- ``start()``: the hop's SERVER span (the middleware), continuing the incoming W3C
  ``traceparent``/``tracestate``;
- ``outgoing()``: one CLIENT span per upstream attempt (forward(), fetch()), whose
  traceparent the upstream request carries, so the next hop's span is its child;
- ``child()``: the INTERNAL spans of eldric.trace.child (retries, members, plugins).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from eldric import __version__

log = structlog.get_logger("eldric.trace")

_PROPAGATOR = TraceContextTextMapPropagator()
# The queue of spans waiting for export: bounded, so a collector that is down costs at
# most this much memory; past it spans are dropped (the SDK counts them).
_QUEUE = 4096
_EXPORT_TIMEOUT_S = 5.0
# The most a role's exit waits for its spans' export (Tracing.shutdown): one export
# timeout and a little, well inside a container's usual stop grace (10 s, 30 s).
_GRACE_S = 6.0

# GenAI semantic conventions: gen_ai.operation.name by path.
_OPERATIONS = {"/v1/chat/completions": "chat", "/v1/completions": "text_completion",
               "/v1/embeddings": "embeddings", "/v1/messages": "chat",
               "/v1/responses": "chat", "/api/chat": "chat", "/api/generate": "text_completion",
               "/api/embed": "embeddings", "/api/embeddings": "embeddings"}


class _Counting(SpanExporter):
    """The OTLP exporter, with its failures counted and logged once per outage (not
    once per batch): a collector that is down must not flood eldric's log."""

    def __init__(self, inner: SpanExporter, endpoint: str) -> None:
        self.inner = inner
        self.endpoint = endpoint
        self.dropped = 0  # spans that failed to export
        self.exported = 0
        self._down = False
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter's bug must not kill the export thread
            result = SpanExportResult.FAILURE
            why = repr(exc)
        else:
            why = "export failed"
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.exported += len(spans)
                if self._down:
                    self._down = False
                    log.info("otel_collector_back", endpoint=self.endpoint,
                             dropped=self.dropped)
            else:
                self.dropped += len(spans)
                if not self._down:
                    self._down = True
                    log.warning("otel_export_failed", endpoint=self.endpoint, error=why,
                                note="spans are dropped until it answers; logged once")
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _exporter(endpoint: str, protocol: str) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        # insecure unless https: a collector on the host or the cluster's network
        return OTLPSpanExporter(endpoint=endpoint, insecure=not endpoint.startswith("https"),
                                timeout=_EXPORT_TIMEOUT_S)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import \
        OTLPSpanExporter as HttpExporter
    # As OTEL_EXPORTER_OTLP_ENDPOINT: a URL without a path gets the signal's /v1/traces.
    scheme, _, rest = endpoint.partition("://")
    if "/" not in rest.rstrip("/"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return HttpExporter(endpoint=endpoint, timeout=_EXPORT_TIMEOUT_S)


class Tracing:
    """One role's tracer and what exports its spans (RoleInfo.tracer)."""

    def __init__(self, role: str, endpoint: str, protocol: str, ratio: float) -> None:
        resource = Resource.create({"service.name": f"eldric-{role}",
                                    "service.version": __version__, "eldric.role": role})
        self.provider = TracerProvider(resource=resource,
                                       sampler=ParentBased(TraceIdRatioBased(ratio)))
        self.exporter = _Counting(_exporter(endpoint, protocol), endpoint)
        self.processor = BatchSpanProcessor(self.exporter, max_queue_size=_QUEUE,
                                            export_timeout_millis=int(_EXPORT_TIMEOUT_S * 1000))
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("eldric", __version__)
        self.role = role

    def shutdown(self, grace: float | None = None) -> bool:
        """Export what is queued, then stop; at most `grace` seconds: the SDK's own
        shutdown waits up to 30 s for its export thread, and a collector that takes the
        connection but never answers costs each batch its export timeout, so exit would
        wait that long. Run in a daemon thread, given up on after the grace (what is not
        exported by then is dropped). False when it did not finish in time."""
        grace = _GRACE_S if grace is None else grace  # read now: a test may shorten it
        done = threading.Thread(target=self.provider.shutdown, name="eldric-otel-shutdown",
                                daemon=True)
        done.start()
        done.join(grace)
        if done.is_alive():
            log.warning("otel_shutdown_cut", grace_s=grace, endpoint=self.exporter.endpoint,
                        note="spans still queued for a collector that does not answer "
                        "are dropped")
            return False
        return True


def setup(role: str, endpoint: str, protocol: str, ratio: float) -> Tracing:
    # The exporters log every failed attempt through logging; _Counting says it once.
    for name in ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                 "opentelemetry.exporter.otlp.proto.grpc.exporter",
                 "opentelemetry.sdk._shared_internal", "opentelemetry.sdk.trace.export"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return Tracing(role, endpoint, protocol, ratio)


# ---------------------------------------------------------------- the hop's span


def start(tracing: Tracing, request: Any, hop: Any) -> Any:
    """The hop's SERVER span, child of the incoming traceparent if there is one."""
    headers = request.headers
    parent = None
    traceparent = headers.get("traceparent")
    if traceparent is not None:
        carrier = {"traceparent": traceparent}
        state = headers.get("tracestate")
        if state is not None:
            carrier["tracestate"] = state
        parent = _PROPAGATOR.extract(carrier)
    path = request.path
    return Span(tracing.tracer.start_span(
        f"{request.method} {path}", context=parent, kind=SpanKind.SERVER,
        attributes={"http.request.method": request.method, "url.path": path,
                    "eldric.role": hop.role, "eldric.request_id": hop.request_id}),
        tracing.tracer)


def end(request: Any, hop: Any, status: int) -> None:
    """The hop's span, ended once its reply went out (a stream: after its end)."""
    span = hop.span.span
    if not span.is_recording():
        span.end()
        return
    span.set_attribute("http.response.status_code", status)
    operation = _OPERATIONS.get(request.path)
    if hop.model is not None:
        span.set_attribute("gen_ai.request.model", hop.model)
        if operation is not None:
            span.update_name(f"{operation} {hop.model}")  # GenAI: "{operation} {model}"
    if operation is not None:
        span.set_attribute("gen_ai.operation.name", operation)
    if hop.upstream is not None:
        span.set_attribute("eldric.upstream", hop.upstream)
    if hop.ttfb is not None:
        span.set_attribute("eldric.ttft_ms", round(hop.ttfb * 1000, 3))
    head = hop.reply_head
    if head:
        _from_reply_head(span, head)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
    span.end()


def received(tracing: Tracing, pairs: list[tuple[str, str]], name: str,
             attrs: Mapping[str, Any]) -> tuple[Span, list[tuple[str, str]]]:
    """A span for work that arrives with headers but not as an HTTP request to this
    process (the worker's side of a tunnel: a request polled from the edge), child of
    the traceparent in `pairs`; and `pairs` with the traceparent naming it instead, so
    the request it makes (to its own listener) is its child."""
    carrier = {k.lower(): v for k, v in pairs if k.lower() in ("traceparent", "tracestate")}
    parent = _PROPAGATOR.extract(carrier) if "traceparent" in carrier else None
    span = tracing.tracer.start_span(name, context=parent, kind=SpanKind.INTERNAL,
                                     attributes=attrs)
    out: dict[str, str] = {}
    _PROPAGATOR.inject(out, context=otel_trace.set_span_in_context(span))
    kept = [(k, v) for k, v in pairs if k.lower() not in ("traceparent", "tracestate")]
    return Span(span, tracing.tracer), kept + list(out.items())


# what the last upstream's reply head says, worth keeping on this hop's span
_REPLY_ATTRS = {b"x-eldric-route-reason": "eldric.route_reason",
                b"x-eldric-worker": "eldric.worker"}


def decided(hop_span: Span, reply_headers: Mapping[str, str]) -> None:
    """What this hop says of its route in its reply headers, on its span."""
    for name, value in reply_headers.items():
        attr = _REPLY_ATTRS.get(name.lower().encode())
        if attr is not None:
            hop_span.span.set_attribute(attr, value)


def _from_reply_head(span: Any, head: Any) -> None:
    for name, value in head:
        attr = _REPLY_ATTRS.get(name.lower() if isinstance(name, bytes) else
                                name.lower().encode())
        if attr is not None:
            span.set_attribute(attr, value.decode("latin-1") if isinstance(value, bytes)
                               else value)


# ---------------------------------------------------------------- upstream attempts


def outgoing(hop_span: Span, attempt: Any, method: str, base_url: str, path: str,
             headers: Mapping[str, str] | None) -> tuple[Any, dict[str, str]]:
    """One upstream attempt's CLIENT span (child of `attempt`, the caller's span for
    this attempt, when it is one; else of the hop's span), and the target's headers
    plus the traceparent naming it."""
    parent = attempt if isinstance(attempt, Span) else hop_span
    ctx = otel_trace.set_span_in_context(parent.span)
    span = parent.tracer.start_span(
        method, context=ctx, kind=SpanKind.CLIENT,
        attributes={"http.request.method": method, "url.full": base_url + path,
                    "server.address": _host(base_url)})
    out = dict(headers) if headers else {}
    _PROPAGATOR.inject(out, context=otel_trace.set_span_in_context(span))
    return span, out


def settle(span: Any, status: int | None, outcome: str) -> None:
    """An attempt's CLIENT span ended: its status, ERROR unless it answered."""
    if span.is_recording():
        if status:
            span.set_attribute("http.response.status_code", status)
        span.set_attribute("eldric.outcome", outcome)
        if outcome not in ("ok", "client_error", "unsupported"):
            span.set_status(Status(StatusCode.ERROR, outcome))
    span.end()


# GenAI semconv's gen_ai.provider.name (its well-known values) by native adapter name
_PROVIDERS = {"anthropic": "anthropic", "bedrock": "aws.bedrock", "cohere": "cohere",
              "gemini": "gcp.gemini", "vertex": "gcp.vertex_ai"}


def translating(hop_span: Span, attempt: Any, client_api: str, to: str,
                model: str | None) -> Span:
    """A translated exchange's `eldric.translate` span (the client's API, `client_api`,
    turned into `to` and the reply back), child of the caller's attempt span when it is
    one, else of the hop's; the attempt's CLIENT span goes under it. Ended by settle()."""
    parent = attempt if isinstance(attempt, Span) else hop_span
    attrs = {"eldric.translate.from": client_api, "eldric.translate.to": to}
    if model:
        attrs["gen_ai.request.model"] = model
    provider = _PROVIDERS.get(to)
    if provider is not None:
        attrs["gen_ai.provider.name"] = provider
    return child(parent, "eldric.translate", attrs)


def _host(base_url: str) -> str:
    rest = base_url.partition("://")[2]
    return rest.split("/", 1)[0].rsplit(":", 1)[0] if rest else base_url


# ---------------------------------------------------------------- spans (the face)


class Span:
    """An OpenTelemetry span and the tracer that made it (each role has its own
    provider, and a child of an unsampled span must come from it too, so that it carries
    the trace on with sampled=0 rather than start a new one). What hop.span holds and
    what eldric.trace.child hands back; as a context manager it ends with the block."""

    __slots__ = ("span", "tracer")

    def __init__(self, span: Any, tracer: Any) -> None:
        self.span = span
        self.tracer = tracer

    def set_attribute(self, key: str, value: Any) -> None:
        self.span.set_attribute(key, value)

    def set_attributes(self, attrs: Mapping[str, Any]) -> None:
        self.span.set_attributes(attrs)

    def fail(self, description: str) -> None:
        self.span.set_status(Status(StatusCode.ERROR, description))

    def __enter__(self) -> Span:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is not None and self.span.is_recording():
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, repr(exc)))
        self.span.end()


def child(parent: Span, name: str, attrs: Mapping[str, Any] | None = None,
          kind: SpanKind = SpanKind.INTERNAL) -> Span:
    """A child span of `parent` (the hop's span, or another child)."""
    ctx = otel_trace.set_span_in_context(parent.span)
    return Span(parent.tracer.start_span(name, context=ctx, kind=kind, attributes=attrs),
                parent.tracer)
