"""eldric.backends.call.send, through both roles, with the official SDKs: a native API
(the tiny test adapter, tests/backends/tiny.py) reached from the worker (--backend) and
the cloud role (a backend of its kind), whole and streamed, its errors mapped, failover
to a second backend on 429/5xx and on a dead connection, a stream cut mid-way, the client
leaving, and a client API eldric translates (Anthropic's Messages -> chat -> native)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp
import anthropic
import openai
import pytest

from tests.backends import tiny
from tests.backends.conftest import tiny_cloud, tiny_worker
from tests.conftest import leave, metric, open_raw, raw_post, read_head, until, url_of

MSG = [{"role": "user", "content": "hi"}]
TEXT = "".join(tiny.TOKENS)


async def _listed(url: str) -> bool:
    async with aiohttp.ClientSession() as s, s.get(url + "/v1/models") as r:
        return r.status == 200 and "tiny-1" in {m["id"] for m in (await r.json())["data"]}


@contextlib.asynccontextmanager
async def front(role: str, tmp_path, *servers, **options):  # type: ignore[no-untyped-def]
    """The role in front of the fake(s): the worker fronts the first, the cloud role has
    each as a backend (tiny-a, tiny-b, …). Yields its URL once the models are listed."""
    urls = [url_of(s) for s in servers]
    if role == "worker":
        ctx = tiny_worker(tmp_path, urls[0], backend_options=options)
    else:
        ctx = tiny_cloud(tmp_path, *urls, **options)
    async with ctx as url:
        await until(lambda: _listed(url), timeout=10)
        yield url


_CLIENTS: list[openai.AsyncOpenAI] = []


def _sdk(url: str) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    _CLIENTS.append(client)
    return client


@pytest.fixture(autouse=True)
async def _close_clients():  # type: ignore[no-untyped-def]
    yield
    while _CLIENTS:
        await _CLIENTS.pop().close()


ROLES = pytest.mark.parametrize("role", ["worker", "cloud"])


@ROLES
async def test_whole_and_streamed_chat_through_the_adapter(role, tiny_kind, aiohttp_server,
                                                           tmp_path):
    fake = await aiohttp_server(tiny.make_app())
    knobs = fake.app[tiny.KNOBS]
    async with front(role, tmp_path, fake, prefix="[p] ") as url:
        sdk = _sdk(url)
        whole = await sdk.chat.completions.with_raw_response.create(
            model="tiny-1", messages=MSG, max_tokens=9)
        reply = whole.parse()
        assert reply.choices[0].message.content == TEXT
        assert reply.choices[0].finish_reason == "stop"
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (7, 4)
        if role == "cloud":
            assert whole.headers["x-eldric-backend"] == "tiny-a"
        sent = knobs.requests[-1]
        # the native request: the adapter's shape, the backend's options and key
        assert sent == {"model": "tiny-1", "prompt": "[p] User: hi\nAssistant:",
                        "stream": False, "max_new": 9}
        assert knobs.headers[-1]["Authorization"] == f"Bearer {tiny.KEY}"
        assert knobs.headers[-1]["User-Agent"].startswith("eldric/")
        assert "X-Request-ID" in knobs.headers[-1]

        chunks = [c async for c in await sdk.chat.completions.create(
            model="tiny-1", messages=MSG, stream=True, stream_options={"include_usage": True})]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 4)
        assert knobs.requests[-1]["stream"] is True
        models = {m.id async for m in sdk.models.list()}
        assert {"tiny-1", "tiny-2"} <= models


@ROLES
async def test_a_client_error_is_mapped_and_not_retried(role, tiny_kind, aiohttp_server,
                                                        tmp_path):
    """A 400 of the backend is the client's: its egress's OpenAI error (status and code
    kept), sent once, not tried on the second backend."""
    a = await aiohttp_server(tiny.make_app())
    b = await aiohttp_server(tiny.make_app())
    async with front(role, tmp_path, a, b) as url:
        a.app[tiny.KNOBS].scenario = 400
        with pytest.raises(openai.BadRequestError) as caught:
            await _sdk(url).chat.completions.create(model="tiny-1", messages=MSG)
        assert caught.value.status_code == 400
        assert caught.value.code == "tiny_400"
        assert "scripted 400" in caught.value.message
        assert len(a.app[tiny.KNOBS].requests) == 1
        assert b.app[tiny.KNOBS].requests == []


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_cloud_fails_over_on_429_and_5xx(status, tiny_kind, aiohttp_server, tmp_path):
    a = await aiohttp_server(tiny.make_app())
    b = await aiohttp_server(tiny.make_app())
    async with front("cloud", tmp_path, a, b) as url:
        a.app[tiny.KNOBS].scenario = status
        for stream in (False, True):
            resp = await _sdk(url).chat.completions.with_raw_response.create(
                model="tiny-1", messages=MSG, stream=stream)
            assert resp.headers["x-eldric-backend"] == "tiny-b"
        assert len(a.app[tiny.KNOBS].requests) == 2 and len(b.app[tiny.KNOBS].requests) == 2
        b.app[tiny.KNOBS].scenario = status  # nobody left: the cloud's 503 naming each
        with pytest.raises(openai.APIStatusError) as caught:
            await _sdk(url).chat.completions.create(model="tiny-1", messages=MSG)
        assert caught.value.status_code == 503
        assert f"tiny-a: scripted {status}" in caught.value.message
        assert f"tiny-b: scripted {status}" in caught.value.message


async def test_worker_answers_the_backends_rate_limit(tiny_kind, aiohttp_server, tmp_path):
    fake = await aiohttp_server(tiny.make_app())
    async with front("worker", tmp_path, fake) as url:
        fake.app[tiny.KNOBS].scenario = 429
        with pytest.raises(openai.RateLimitError) as caught:
            await _sdk(url).chat.completions.create(model="tiny-1", messages=MSG)
        assert caught.value.code == "tiny_429"


@ROLES
async def test_a_dead_backend_is_503_and_the_cloud_fails_over(role, tiny_kind,
                                                               aiohttp_server, tmp_path):
    a = await aiohttp_server(tiny.make_app())
    b = await aiohttp_server(tiny.make_app())
    async with front(role, tmp_path, a, b) as url:
        await a.close()  # listed, then gone: the connection is refused
        if role == "cloud":
            resp = await _sdk(url).chat.completions.with_raw_response.create(
                model="tiny-1", messages=MSG)
            assert resp.headers["x-eldric-backend"] == "tiny-b"
            await b.close()
        with pytest.raises(openai.APIStatusError) as caught:
            await _sdk(url).chat.completions.create(model="tiny-1", messages=MSG)
        assert caught.value.status_code == 503
        assert caught.value.code == "upstream_unavailable"


@ROLES
async def test_a_200_eldric_cannot_read_is_the_backends_failure(role, tiny_kind,
                                                                  aiohttp_server, tmp_path):
    """Not the API's JSON: a 502 from the worker; the cloud role tries the next backend,
    and with none left answers its 503 naming what each did."""
    a = await aiohttp_server(tiny.make_app())
    b = await aiohttp_server(tiny.make_app())
    async with front(role, tmp_path, a, b) as url:
        a.app[tiny.KNOBS].scenario = "garbage"
        if role == "cloud":
            resp = await _sdk(url).chat.completions.with_raw_response.create(
                model="tiny-1", messages=MSG)
            assert resp.headers["x-eldric-backend"] == "tiny-b"
            b.app[tiny.KNOBS].scenario = "garbage"
        with pytest.raises(openai.APIStatusError) as caught:
            await _sdk(url).chat.completions.create(model="tiny-1", messages=MSG)
        assert caught.value.status_code == (502 if role == "worker" else 503)
        assert "cannot read" in caught.value.message


@ROLES
async def test_the_backend_refusing_eldrics_key_is_never_the_clients_401(
        role, tiny_kind, aiohttp_server, tmp_path, monkeypatch):
    """The backend's 401 is eldric's key failing, not the client's: a 502
    backend_auth_failed from the worker (nobody else to try), the cloud role's 503 after
    trying the rest, and the cloud role shows the backend's auth_failed."""
    a = await aiohttp_server(tiny.make_app())
    async with front(role, tmp_path, a) as url:
        monkeypatch.setattr(tiny, "KEY", "rotated")  # eldric's key is now the wrong one
        with pytest.raises(openai.APIStatusError) as caught:
            await _sdk(url).chat.completions.create(model="tiny-1", messages=MSG)
        assert caught.value.status_code == (502 if role == "worker" else 503)
        assert "refused its API key (HTTP 401)" in caught.value.message
        if role == "cloud":
            async with aiohttp.ClientSession() as s, \
                    s.get(url + "/api/v1/backends") as r:
                assert (await r.json())["backends"][0]["auth_failed"] is True


async def _stream_body(url: str) -> bytes:
    """A streamed chat's whole body, read to its clean end (an error would raise)."""
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json={
            "model": "tiny-1", "messages": MSG, "stream": True}) as r:
        assert r.status == 200
        return await r.read()


@ROLES
@pytest.mark.parametrize("scenario", ["cut", "error_event"])
async def test_a_stream_failing_mid_way_ends_in_one_error_event(role, scenario, tiny_kind,
                                                                aiohttp_server, tmp_path):
    """The connection cut after two tokens, or the API's own error event after one: the
    tokens so far, then one OpenAI error event, a clean close, no [DONE]; the SDK raises."""
    a = await aiohttp_server(tiny.make_app())
    async with front(role, tmp_path, a) as url:
        a.app[tiny.KNOBS].scenario = scenario
        body = await _stream_body(url)
        events = [e for e in body.split(b"\n\n") if e]
        errors = [e for e in events if b'"error"' in e]
        assert len(errors) == 1 and events[-1] == errors[0]
        assert json.loads(errors[0].removeprefix(b"data: "))["error"]["message"]
        assert b"[DONE]" not in body
        got = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content") or ""
                      for e in events[:-1])
        assert got == ("Hello" if scenario == "cut" else "Hel")
        with pytest.raises(openai.APIError):
            async for _ in await _sdk(url).chat.completions.create(
                    model="tiny-1", messages=MSG, stream=True):
                pass


@ROLES
@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_the_client_leaving_cancels_the_upstream_request(role, how, tiny_kind,
                                                               aiohttp_server, tmp_path):
    """The connection to the backend is closed at once, and an API with a cancel
    request of its own (the egress's optional hook) gets it, signed."""
    a = await aiohttp_server(tiny.make_app())
    knobs = a.app[tiny.KNOBS]
    async with front(role, tmp_path, a, cancel=True) as url:
        knobs.scenario = "hang"
        reader, writer = await open_raw(url)
        writer.write(raw_post("/v1/chat/completions", json.dumps({
            "model": "tiny-1", "messages": MSG, "stream": True}).encode()))
        status, _ = await read_head(reader)
        assert status == 200
        await asyncio.wait_for(reader.readuntil(b'"content":"."'), 5)
        left = time.monotonic()
        leave(writer, how)
        await asyncio.wait_for(knobs.cancelled.wait(), 3)
        assert time.monotonic() - left < 3
        writer.close()
        series = f'eldric_client_disconnects_total{{role="{role}"}}'
        await until(lambda: _counted(url, series), timeout=3)
        assert len(knobs.requests) == 1
        await until(lambda: knobs.cancels, timeout=3)
        assert knobs.cancels == [{"why": "client left"}]


async def _counted(url: str, series: str) -> bool:
    return await metric(url, series) >= 1


@ROLES
async def test_an_anthropic_messages_client_reaches_the_native_backend(role, tiny_kind,
                                                                      aiohttp_server,
                                                                      tmp_path):
    """Anthropic's Messages API -> (its translator) chat -> (the adapter) the native API,
    and back both ways, whole and streamed, with the official anthropic SDK."""
    a = await aiohttp_server(tiny.make_app())
    async with front(role, tmp_path, a) as url:
        client = anthropic.AsyncAnthropic(base_url=url, api_key="unused", max_retries=0)
        msg = await client.messages.create(model="tiny-1", max_tokens=32, messages=MSG)
        assert msg.content[0].text == TEXT and msg.stop_reason == "end_turn"
        assert (msg.usage.input_tokens, msg.usage.output_tokens) == (7, 4)
        async with client.messages.stream(model="tiny-1", max_tokens=32,
                                          messages=MSG) as stream:
            text = "".join([t async for t in stream.text_stream])
            final = await stream.get_final_message()
        assert text == TEXT and final.stop_reason == "end_turn"
        assert a.app[tiny.KNOBS].requests[-1]["prompt"] == "User: hi\nAssistant:"
        a.app[tiny.KNOBS].scenario = 400  # an error in the Messages API's own shape
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(model="tiny-1", max_tokens=32, messages=MSG)
        assert caught.value.status_code == 400
        assert caught.value.body["type"] == "error"


@ROLES
@pytest.mark.parametrize("health", [True, False])
async def test_an_api_without_a_model_list_serves_the_configured_models(
        role, health, tiny_kind, aiohttp_server, tmp_path, monkeypatch):
    """No model list in the API: its health request is the probe, else nothing is
    asked; either way the `models` option is the list served."""
    import dataclasses

    from eldric.backends.egress import Outbound
    from eldric.roles.cloud import kinds
    from eldric.roles.worker.backends import KINDS, BackendKind

    probe = (lambda r: Outbound("/tiny/models", method="GET")) if health else (lambda r: None)
    bare = dataclasses.replace(tiny.TINY, models=lambda r: None, health=probe)
    monkeypatch.setitem(KINDS, "tiny", BackendKind("", "", tuple(bare.ops), adapter=bare))
    monkeypatch.setitem(kinds.PROVIDER_KINDS, "tiny", kinds._native(bare))
    a = await aiohttp_server(tiny.make_app())
    async with front(role, tmp_path, a, models=["tiny-1", "custom-9"]) as url:
        listed = {m.id async for m in _sdk(url).models.list()}
        assert {"tiny-1", "custom-9"} <= listed and "tiny-2" not in listed
        reply = await _sdk(url).chat.completions.create(model="tiny-1", messages=MSG)
        assert reply.choices[0].message.content == TEXT
