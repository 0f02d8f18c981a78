"""eldric.backends.call against DESIGN.md's contract, where the parts meet: a native
kind's failure never takes a healthy worker out of rotation, a stream that ends before
its first event is still a failure another backend may answer, every client API gets its
own error shape before and after the first byte, a model list that is only missing does
not make a reachable backend unhealthy, and the edge counts a native stream's usage
exactly (tests/backends/tiny.py's API, through the real roles)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re

import aiohttp
import pytest

from tests.backends import tiny
from tests.backends.conftest import tiny_worker
from tests.backends.test_call import MSG, ROLES, _listed, _sdk, front
from tests.backends.test_call import _close_clients  # noqa: F401 - closes _sdk()s here too
from tests.conftest import leave, open_raw, raw_post, run_eldric, until, url_of


async def _health(url: str) -> dict:
    async with aiohttp.ClientSession() as s, s.get(url + "/health") as r:
        return await r.json()


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_request_does_not_mark_the_workers_backend_down(
        status, tiny_kind, aiohttp_server, tmp_path):
    """A 403 can be one request's (Bedrock's AccessDeniedException for a model the
    account has no access to; Gemini's PERMISSION_DENIED for one tuned model): the
    worker answers it, and its backend stays in rotation (the probe, which asks with the
    same key, is what says the key is bad)."""
    a = await aiohttp_server(tiny.make_app())
    async with front("worker", tmp_path, a) as url:
        assert (await _health(url))["status"] == "healthy"
        a.app[tiny.KNOBS].scenario = status
        async with aiohttp.ClientSession() as s, s.post(
                url + "/v1/chat/completions", json={"model": "tiny-1", "messages": MSG}) as r:
            assert r.status == 502  # as a native API that says so in its body (Gemini's)
            got = await r.json()
        assert f"(HTTP {status}): scripted {status}" in got["error"]["message"]  # its words
        assert got["error"]["code"] == "backend_auth_failed"
        health = await _health(url)
        assert health["status"] == "healthy" and health["backend"]["healthy"] is True


@ROLES
async def test_a_stream_that_ends_before_its_first_event_is_a_failure_before_the_first_byte(
        role, tiny_kind, aiohttp_server, tmp_path):
    """Nothing reached the client: the cloud role tries the next backend; the worker,
    with nobody else, answers the backend's failure as an HTTP error (not a 200 with an
    error event in it)."""
    a = await aiohttp_server(tiny.make_app())
    b = await aiohttp_server(tiny.make_app())
    async with front(role, tmp_path, a, b) as url:
        a.app[tiny.KNOBS].scenario = "empty"
        async with aiohttp.ClientSession() as s, s.post(
                url + "/v1/chat/completions",
                json={"model": "tiny-1", "messages": MSG, "stream": True}) as r:
            body = await r.read()
            if role == "cloud":
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "tiny-b"
                assert b"[DONE]" in body and b'"error"' not in body
            else:
                assert r.status == 502
                assert json.loads(body)["error"]["code"] == "upstream_error"


# the client APIs eldric translates to chat: (path, body, is a stream, how its error looks)
def _anthropic_error(obj: dict) -> bool:
    return obj.get("type") == "error" and isinstance(obj["error"].get("message"), str)


def _openai_error(obj: dict) -> bool:
    return isinstance(obj.get("error"), dict) and isinstance(obj["error"]["message"], str)


def _ollama_error(obj: dict) -> bool:
    return isinstance(obj.get("error"), str) and bool(obj["error"])


CLIENT_APIS = {
    "messages": ("/v1/messages", {"model": "tiny-1", "max_tokens": 16, "messages": MSG},
                 _anthropic_error),
    "responses": ("/v1/responses", {"model": "tiny-1", "input": "hi"}, _openai_error),
    "ollama": ("/api/chat", {"model": "tiny-1", "messages": MSG}, _ollama_error),
}


def _last_event(api: str, body: bytes) -> dict:
    """The stream's last event's JSON: an SSE event's data (Messages, Responses), an
    NDJSON line (Ollama's)."""
    if api == "ollama":
        return json.loads(body.strip().splitlines()[-1])
    last = [e for e in body.split(b"\n\n") if e.strip()][-1]
    data = [ln for ln in last.split(b"\n") if ln.startswith(b"data:")][0]
    return json.loads(data[5:])


@ROLES
@pytest.mark.parametrize("api", list(CLIENT_APIS))
async def test_every_client_api_gets_its_own_error_shape(role, api, tiny_kind,
                                                         aiohttp_server, tmp_path):
    """The native backend failing before the first byte (its 400, its 500) and after it
    (the stream cut mid-way): the error in the client API's own shape, the status kept."""
    path, body, is_error = CLIENT_APIS[api]
    a = await aiohttp_server(tiny.make_app())
    knobs = a.app[tiny.KNOBS]
    async with front(role, tmp_path, a) as url, aiohttp.ClientSession() as s:
        whole = {**body, "stream": False}
        for status, expected in ((400, 400), (500, 500 if role == "worker" else 503)):
            knobs.scenario = status
            async with s.post(url + path, json=whole) as r:
                assert r.status == expected, (status, await r.text())
                assert is_error(await r.json()), await r.text()
        knobs.scenario = "cut"
        async with s.post(url + path, json={**body, "stream": True}) as r:
            assert r.status == 200
            got = await r.read()
        last = _last_event(api, got)
        if api == "responses":  # its stream's error event: {"type": "error", "message"…}
            assert last["type"] in ("error", "response.failed"), got
        else:
            assert is_error(last), got


@ROLES
async def test_a_missing_model_list_does_not_make_a_reachable_backend_unhealthy(
        role, tiny_kind, aiohttp_server, tmp_path, monkeypatch):
    """A server whose model list is not there (404: an older version, a list extension
    turned off) but which answers its health request: healthy, the configured models
    served."""
    from eldric.backends.egress import Outbound
    from eldric.roles.cloud import kinds
    from eldric.roles.worker.backends import KINDS, BackendKind

    bare = dataclasses.replace(
        tiny.TINY, models=lambda r: Outbound("/tiny/no-such-list", method="GET"),
        health=lambda r: Outbound("/tiny/models", method="GET"))
    monkeypatch.setitem(KINDS, "tiny", BackendKind("", "", tuple(bare.ops), adapter=bare))
    monkeypatch.setitem(kinds.PROVIDER_KINDS, "tiny", kinds._native(bare))
    a = await aiohttp_server(tiny.make_app())
    async with front(role, tmp_path, a, models=["tiny-1"]) as url:
        listed = {m.id async for m in _sdk(url).models.list()}
        assert listed == {"tiny-1"}
        health = await _health(url)
        assert health["status"] in ("healthy", "degraded"), health
        reply = await _sdk(url).chat.completions.create(model="tiny-1", messages=MSG)
        assert reply.choices[0].message.content == "".join(tiny.TOKENS)


async def test_the_edge_counts_a_native_stream_exactly(tiny_kind, aiohttp_server, tmp_path):
    """edge -> router -> worker --backend (native): a streamed chat whose client did not
    ask for usage; the edge asks for it, counts the backend's own figures (7 prompt, 4
    completion tokens: no estimate) and the client gets no usage chunk."""
    a = await aiohttp_server(tiny.make_app())
    async with tiny_worker(tmp_path / "w", url_of(a)) as w:
        await until(lambda: _listed(w), timeout=10)
        async with run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                              workers=w) as r, \
                run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                           bind="127.0.0.1", routers=r["router"], api_key="sk-t") as e:
            edge = e["edge"]
            await until(lambda: _listed(r["router"]), timeout=10)
            async with aiohttp.ClientSession() as s, s.post(
                    edge + "/v1/chat/completions",
                    json={"model": "tiny-1", "messages": MSG, "stream": True},
                    headers={"Authorization": "Bearer sk-t"}) as resp:
                assert resp.status == 200
                body = await resp.read()
            assert b'"usage":{' not in body and b"[DONE]" in body
            assert a.app[tiny.KNOBS].requests[-1]["stream"] is True
            await until(lambda: _tokens(edge, "completion"), timeout=5)
            assert (await _tokens(edge, "prompt"), await _tokens(edge, "completion")) == (7, 4)
            # a Messages client through the same hops: the worker translates, the edge
            # reads Anthropic's usage events, the same exact figures
            async with aiohttp.ClientSession() as s, s.post(
                    edge + "/v1/messages", json={"model": "tiny-1", "max_tokens": 16,
                                                 "messages": MSG, "stream": True},
                    headers={"Authorization": "Bearer sk-t"}) as resp:
                assert resp.status == 200
                assert b"event: message_stop" in await resp.read()
            await until(lambda: _tokens_are(edge, 14, 8), timeout=5)


async def _tokens_are(url: str, prompt: int, completion: int) -> bool:
    return (await _tokens(url, "prompt"), await _tokens(url, "completion")) == (prompt,
                                                                                completion)


async def _tokens(url: str, kind: str) -> float:
    """eldric_edge_tokens_total of the model and kind, whichever client label the key has."""
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        text = await r.text()
    found = re.findall(r'^eldric_edge_tokens_total\{([^}]*)\} (\S+)$', text, re.M)
    return sum(float(v) for labels, v in found
               if 'model="tiny-1"' in labels and f'kind="{kind}"' in labels)


@ROLES
@pytest.mark.parametrize("stream", [False, True])
async def test_the_backends_retry_after_reaches_the_client_with_its_429(
        role, stream, tiny_kind, aiohttp_server, tmp_path):
    """A native backend's 429 with Retry-After: the worker answers it as it is; the cloud
    role, every backend having said "come back later", relays the last as it was sent."""
    a = await aiohttp_server(tiny.make_app())
    b = await aiohttp_server(tiny.make_app())
    servers = (a,) if role == "worker" else (a, b)
    async with front(role, tmp_path, *servers) as url:
        for server, wait in zip(servers, ("7", "9")):
            server.app[tiny.KNOBS].scenario = 429
            server.app[tiny.KNOBS].retry_after = wait
        async with aiohttp.ClientSession() as s, s.post(
                url + "/v1/chat/completions",
                json={"model": "tiny-1", "messages": MSG, "stream": stream}) as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == ("7" if role == "worker" else "9")
            assert (await r.json())["error"]["code"] == "tiny_429"
        async with aiohttp.ClientSession() as s, s.post(
                url + "/v1/messages", json={"model": "tiny-1", "max_tokens": 8,
                                            "messages": MSG}) as r:
            assert r.status == 429 and r.headers["Retry-After"]
            assert (await r.json())["error"]["type"] == "rate_limit_error"


async def test_a_refused_request_does_not_take_a_cloud_backend_out_of_rotation(
        tiny_kind, aiohttp_server, tmp_path):
    """The cloud role: a native backend's 403 to one request is tried on the next
    backend, shown as auth_failed, and the backend stays in rotation: the next request
    (for which it answers) is its own again."""
    a = await aiohttp_server(tiny.make_app())
    b = await aiohttp_server(tiny.make_app())
    async with front("cloud", tmp_path, a, b) as url:
        a.app[tiny.KNOBS].scenario = 403
        first = await _sdk(url).chat.completions.with_raw_response.create(
            model="tiny-1", messages=MSG)
        assert first.headers["x-eldric-backend"] == "tiny-b"
        async with aiohttp.ClientSession() as s, s.get(url + "/api/v1/backends") as r:
            shown = {x["name"]: x for x in (await r.json())["backends"]}
        assert shown["tiny-a"]["auth_failed"] is True
        assert shown["tiny-a"]["status"] == "healthy"
        a.app[tiny.KNOBS].scenario = "ok"
        again = await _sdk(url).chat.completions.with_raw_response.create(
            model="tiny-1", messages=MSG)
        assert again.headers["x-eldric-backend"] == "tiny-a"


@ROLES
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_the_client_leaving_before_a_whole_reply_cancels_the_upstream(
        role, path, tiny_kind, aiohttp_server, tmp_path):
    """A whole (not streamed) reply the backend is still working on: the client leaving
    closes the upstream connection at once (the backend stops), for a translated client
    API too."""
    a = await aiohttp_server(tiny.make_app())
    knobs = a.app[tiny.KNOBS]
    async with front(role, tmp_path, a) as url:
        knobs.scenario = "stall"
        reader, writer = await open_raw(url)
        writer.write(raw_post(path, json.dumps({
            "model": "tiny-1", "max_tokens": 8, "messages": MSG}).encode()))
        await until(lambda: knobs.requests, timeout=5)
        leave(writer, "rst")
        await asyncio.wait_for(knobs.cancelled.wait(), 3)
        writer.close()
