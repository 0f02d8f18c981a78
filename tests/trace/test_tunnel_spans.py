"""The tunnel's spans: a router's call at the edge's forward endpoint (edge server span →
eldric.tunnel.forward → its CLIENT span) continued on the worker's side
(eldric.tunnel.serve → the worker's own server span), one trace; and a call the
tunnel cannot take (its queue full) is an ERROR tunnel span."""

from __future__ import annotations

import base64
import json

import aiohttp
import pytest

from tests.conftest import run_eldric, until, url_of
from tests.fakes import otlp
from tests.roles.tunnel.kit import ADMIN, ROUTER, WORKER, auth, connect, edge, forwarded

pytest.importorskip("opentelemetry.sdk")

SERVER, CLIENT, INTERNAL, ERROR = 2, 3, 1, 2
CHAT = {"model": "eldric-mock", "messages": [{"role": "user", "content": "hi"}]}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
async def collector(aiohttp_server):
    return await aiohttp_server(otlp.make_app())


async def test_a_call_through_the_tunnel_is_one_trace(collector, tmp_path):
    endpoint = url_of(collector)
    async with edge(tmp_path, otel_endpoint=endpoint) as url, \
            run_eldric("worker", tmp_path / "w", backend="mock", port=0, bind="127.0.0.1",
                       tunnel=url, api_key=WORKER, tunnel_concurrency=2,
                       otel_endpoint=endpoint), aiohttp.ClientSession() as s:
        async def tunnels() -> list:
            async with s.get(url + "/api/v1/tunnel/workers", headers=auth(ADMIN)) as r:
                return (await r.json())["tunnels"]
        (t,) = await until(tunnels)
        for stream in (False, True):
            async with s.post(f"{url}/api/v1/tunnel/{t['tunnel']}/forward/v1/chat/completions",
                              json={**CHAT, "stream": stream},
                              headers={**auth(ROUTER),
                                       "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}) as r:
                assert r.status == 200
                await r.read()
        # the envelope form: its own headers go to the worker, but the trace context is
        # this hop's (an envelope's stale traceparent would cut the edge out of it)
        envelope = {"method": "POST", "path": "/v1/chat/completions",
                    "headers": [["Content-Type", "application/json"],
                                ["traceparent", f"00-{'1' * 32}-{'2' * 16}-01"]],
                    "body": base64.b64encode(json.dumps(CHAT).encode()).decode()}
        async with s.post(f"{url}/api/v1/tunnel/{t['tunnel']}/forward", json=envelope,
                          headers={**auth(ROUTER),
                                   "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}) as r:
            assert r.status == 200
            await r.read()
    got = collector.app[otlp.RECEIVED]
    edges = [s for s in got.named("eldric-edge") if s.kind == SERVER and (
        s.attrs.get("url.path", "").endswith("/forward/v1/chat/completions")
        or s.attrs.get("url.path", "").endswith("/forward"))]
    assert len(edges) == 3
    for es in edges:
        assert es.trace_id == TRACE and es.parent_id == "00f067aa0ba902b7"
        (tf,) = [s for s in got.spans if s.name == "eldric.tunnel.forward"
                 and s.parent_id == es.span_id]
        assert tf.attrs["eldric.tunnel.id"] == t["tunnel"] and tf.status != ERROR
        (ec,) = [s for s in got.spans if s.kind == CLIENT and s.parent_id == tf.span_id]
        (ts,) = [s for s in got.named("eldric-worker") if s.name == "eldric.tunnel.serve"
                 and s.parent_id == ec.span_id]
        assert ts.trace_id == TRACE and ts.status != ERROR
        assert ts.attrs["url.path"] == "/v1/chat/completions"
        (ws,) = [s for s in got.named("eldric-worker") if s.kind == SERVER
                 and s.parent_id == ts.span_id]
        assert ws.attrs["url.path"] == "/v1/chat/completions" and ws.trace_id == TRACE


async def test_a_tunnel_that_cannot_take_the_call_is_an_error_span(collector, tmp_path):
    """No worker polls this tunnel and its queue is full (--tunnel-max-queued 1, one
    call waiting): the router gets the edge's 503 tunnel_busy, the tunnel span ERROR."""
    async with edge(tmp_path, otel_endpoint=url_of(collector), tunnel_max_queued=1) as url, \
            aiohttp.ClientSession() as s:
        tid = (await connect(s, url))["tunnel_id"]
        waiting = await forwarded(s, url, tid)

        async def queued() -> bool:
            async with s.get(f"{url}/api/v1/tunnel/workers", headers=auth(ADMIN)) as r:
                return (await r.json())["tunnels"][0]["queued"] == 1
        await until(queued)
        async with s.post(f"{url}/api/v1/tunnel/{tid}/forward/v1/chat/completions",
                          json=CHAT, headers=auth(ROUTER)) as r:
            assert r.status == 503
            assert (await r.json())["error"]["code"] == "tunnel_busy"
        waiting.cancel()
    got = collector.app[otlp.RECEIVED]
    (busy,) = [s for s in got.spans if s.kind == SERVER
               and s.attrs.get("http.response.status_code") == 503]
    (tf,) = [s for s in got.spans if s.name == "eldric.tunnel.forward"
             and s.parent_id == busy.span_id]
    assert tf.status == ERROR and tf.attrs["eldric.tunnel.id"] == tid
