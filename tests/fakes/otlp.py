"""An OTLP/HTTP trace receiver, as a collector is: POST /v1/traces takes a protobuf
ExportTraceServiceRequest (decoded with opentelemetry-proto's own classes) and answers an
ExportTraceServiceResponse. The spans it got are kept, flattened, for the test to read."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)


@dataclass
class Got:
    service: str
    name: str
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind: 2 SERVER, 3 CLIENT
    trace_id: str
    span_id: str
    parent_id: str
    attrs: dict
    status: int  # 0 unset, 1 ok, 2 error


@dataclass
class Received:
    spans: list[Got] = field(default_factory=list)
    posts: int = 0

    def named(self, service: str) -> list[Got]:
        return [s for s in self.spans if s.service == service]


RECEIVED = web.AppKey("received", Received)


def _value(v):  # an AnyValue
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


async def traces(request: web.Request) -> web.Response:
    if request.content_type != "application/x-protobuf":
        return web.Response(status=415)
    msg = ExportTraceServiceRequest()
    msg.ParseFromString(await request.read())
    got = request.app[RECEIVED]
    got.posts += 1
    for rs in msg.resource_spans:
        res = {a.key: _value(a.value) for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                got.spans.append(Got(res.get("service.name", ""), s.name, s.kind,
                                     s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(),
                                     {a.key: _value(a.value) for a in s.attributes},
                                     s.status.code))
    return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                        content_type="application/x-protobuf")


def make_app() -> web.Application:
    app = web.Application()
    app[RECEIVED] = Received()
    app.router.add_post("/v1/traces", traces)
    return app
