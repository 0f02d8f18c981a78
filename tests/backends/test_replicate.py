"""Replicate's predictions end to end: the fake Replicate (tests/fakes/replicate.py) behind
the cloud role and the worker role, driven with the official openai SDK."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
import openai
import pytest

from tests.backends import harness
from tests.conftest import url_of
from tests.fakes import replicate as fake

MODEL = fake.MODEL
TEXT = "".join(fake.PIECES)


def cloud(tmp_path, *servers, options=None):  # type: ignore[no-untyped-def]
    """A cloud role whose backends are these fakes (type replicate, in this order)."""
    return harness.cloud(tmp_path, [
        {"name": f"rep{i}", "type": "replicate", "url": url_of(s), "api_key": fake.TOKEN,
         "priority": 10 * (i + 1), "options": {"models": [MODEL], **(options or {})}}
        for i, s in enumerate(servers)])


@pytest.fixture
async def replicate_server(aiohttp_server):
    return await aiohttp_server(fake.make_app())


_client = harness.client
ROLES = pytest.mark.parametrize("role", ["cloud", "worker"])


@contextlib.asynccontextmanager
async def front(role: str, tmp_path, server, options=None):  # type: ignore[no-untyped-def]
    """The role in front of one fake Replicate (the worker: --backend replicate
    --backend-options '{"models": [...]}'), once it is ready."""
    ctx = cloud(tmp_path, server, options=options) if role == "cloud" else harness.worker(
        tmp_path, "replicate", url_of(server), fake.TOKEN,
        backend_options={"models": [MODEL], **(options or {})})
    async with ctx as url:
        await harness.listed(url, MODEL)
        yield url


async def _ready(url: str) -> None:
    await harness.listed(url, MODEL)


def _sent(server, method: str = "POST") -> list[dict]:
    return [r for r in server.app[fake.KNOBS].requests if r["method"] == method]


def _msgs(text: str) -> list[dict]:
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}]


@ROLES
async def test_whole_reply_waits_then_polls(role, tmp_path, replicate_server):
    async with front(role, tmp_path, replicate_server) as url:
        c = _client(url)
        raw = await c.chat.completions.with_raw_response.create(
            model=MODEL, messages=_msgs("hi"), max_tokens=30, temperature=0.2)
        reply = raw.parse()
        assert raw.headers.get("X-Eldric-Backend") == ("rep0" if role == "cloud" else None)
        assert reply.choices[0].message.content == TEXT
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, len(fake.PIECES))
        create = _sent(replicate_server)[-1]
        assert create["path"] == f"/v1/models/{MODEL}/predictions"
        assert create["headers"]["Prefer"] == "wait=60"
        assert create["headers"]["Authorization"] == f"Bearer {fake.TOKEN}"
        assert create["body"]["input"] == {"prompt": "hi", "system_prompt": "You are terse.",
                                           "max_tokens": 30, "temperature": 0.2}
        # Still processing after the wait: polled at urls.get until it succeeded.
        reply = await c.chat.completions.create(model=MODEL, messages=_msgs("pending"))
        assert reply.choices[0].message.content == TEXT
        polls = [r for r in _sent(replicate_server, "GET") if r["path"].startswith("/v1/predictions/")]
        assert len(polls) == 3


@ROLES
async def test_stream_follows_the_stream_url(role, tmp_path, replicate_server):
    async with front(role, tmp_path, replicate_server) as url:
        text, finish = "", None
        async for chunk in await _client(url).chat.completions.create(
                model=MODEL, messages=_msgs("hi"), stream=True):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        assert text == TEXT and finish == "stop"
        create = _sent(replicate_server)[-1]
        assert create["body"]["stream"] is True and "Prefer" not in create["headers"]
        stream = _sent(replicate_server, "GET")[-1]
        assert stream["path"].startswith("/stream/")
        assert stream["headers"]["Accept"] == "text/event-stream"
        assert stream["headers"]["Authorization"] == f"Bearer {fake.TOKEN}"


@ROLES
async def test_by_version_and_renamed_inputs(role, tmp_path, replicate_server):
    async with front(role, tmp_path, replicate_server, options={
            "version": fake.VERSION, "names": {"max_tokens": "max_new_tokens"}}) as url:
        reply = await _client(url).chat.completions.create(model=MODEL, messages=_msgs("hi"),
                                                           max_tokens=5)
        assert reply.choices[0].message.content == TEXT
        create = _sent(replicate_server)[-1]
        assert create["path"] == "/v1/predictions"
        assert create["body"]["version"] == fake.VERSION
        assert create["body"]["input"]["max_new_tokens"] == 5


@ROLES
async def test_errors_bad_body_images_and_a_422(role, tmp_path, replicate_server):
    async with front(role, tmp_path, replicate_server) as url:
        c = _client(url)
        with pytest.raises(openai.BadRequestError) as info:
            await c.chat.completions.create(model=MODEL, messages=[])
        assert info.value.body["param"] == "messages"
        with pytest.raises(openai.BadRequestError) as info:
            await c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
        assert info.value.body["code"] == "vision_unsupported"
        n = len(_sent(replicate_server))
        replicate_server.app[fake.KNOBS].token = "another"  # eldric's key is refused now
        with pytest.raises(openai.APIStatusError) as info:
            await c.chat.completions.create(model=MODEL, messages=_msgs("hi"))
        assert info.value.status_code in (502, 503)  # not the client's 401
        assert len(_sent(replicate_server)) == n + 1


async def test_cloud_429_fails_over_and_503_alone_is_eldric_503(tmp_path, aiohttp_server):
    first, second = await aiohttp_server(fake.make_app()), await aiohttp_server(fake.make_app())
    async with cloud(tmp_path, first, second) as url:
        await _ready(url)
        c = _client(url)
        first.app[fake.KNOBS].scenario = "ratelimited"
        raw = await c.chat.completions.with_raw_response.create(model=MODEL, messages=_msgs("hi"))
        assert raw.headers["X-Eldric-Backend"] == "rep1"
        second.app[fake.KNOBS].scenario = "overloaded"
        with pytest.raises(openai.InternalServerError) as info:
            await c.chat.completions.create(model=MODEL, messages=_msgs("hi"), stream=True)
        assert info.value.status_code == 503
        assert info.value.body["code"] == "upstream_unavailable"


async def _sse(url: str, content: str) -> list[bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/chat/completions", json={
                "model": MODEL, "stream": True, "messages": _msgs(content)}) as r:
            assert r.status == 200
            return [e for e in (await r.read()).split(b"\n\n") if e]


@ROLES
async def test_stream_error_event_and_cut(role, tmp_path, replicate_server):
    async with front(role, tmp_path, replicate_server) as url:
        for content in ("error_midstream", "cut"):
            events = await _sse(url, content)
            assert b"Hello" in b"".join(events)  # it had begun
            err = json.loads(events[-1].removeprefix(b"data: "))["error"]
            assert err["code"] == "upstream_error"
            assert sum(b'"error"' in e for e in events) == 1 and b"[DONE]" not in events[-1]
            if content == "error_midstream":
                assert "CUDA out of memory" in err["message"]


@ROLES
async def test_an_error_before_any_output_is_a_502_not_a_stream(role, tmp_path,
                                                                 replicate_server):
    """The prediction failed before any output reached the client: the error reply it
    stands for: the worker's 502, the cloud role's 503 once no backend is left (it tries
    the next one first), never a 200 holding an error event."""
    async with front(role, tmp_path, replicate_server) as url:
        async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json={
                "model": MODEL, "stream": True,
                "messages": [{"role": "user", "content": "error_first"}]}) as r:
            err = (await r.json())["error"]
            if role == "worker":
                assert r.status == 502 and err["code"] == "upstream_error"
            else:
                assert r.status == 503 and err["code"] == "upstream_unavailable"
            assert "CUDA out of memory" in err["message"]


@ROLES
async def test_client_leaving_cancels_the_prediction(role, tmp_path, replicate_server):
    async with front(role, tmp_path, replicate_server) as url:
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/chat/completions", json={
                    "model": MODEL, "stream": True, "messages": _msgs("slow")}) as r:
                await r.content.readline()
        knobs = replicate_server.app[fake.KNOBS]
        await asyncio.wait_for(knobs.canceled.wait(), 5)
        cancel = [r for r in knobs.requests if r["path"].endswith("/cancel")]
        assert len(cancel) == 1 and cancel[0]["headers"]["Authorization"] == f"Bearer {fake.TOKEN}"
        assert [p["status"] for p in knobs.predictions.values()] == ["canceled"]


@ROLES
async def test_client_leaving_a_polled_whole_reply_cancels_it(role, tmp_path, replicate_server):
    async with front(role, tmp_path, replicate_server) as url:
        with pytest.raises(asyncio.TimeoutError):
            async with aiohttp.ClientSession() as s:
                await s.post(url + "/v1/chat/completions", timeout=aiohttp.ClientTimeout(0.8),
                             json={"model": MODEL, "messages": _msgs("pending_long")})
        knobs = replicate_server.app[fake.KNOBS]
        await asyncio.wait_for(knobs.canceled.wait(), 5)
        assert [p["status"] for p in knobs.predictions.values()] == ["canceled"]
        assert len([r for r in knobs.requests if r["method"] == "GET"]) < 10  # polling stopped


@ROLES
async def test_urls_on_another_host_are_not_sent_the_token(role, tmp_path, aiohttp_server):
    """A prediction whose urls (stream, get, cancel) name another host: eldric follows
    none of them, so the backend's token never reaches that host; the client gets a 5xx
    in OpenAI's shape."""
    server, other = await aiohttp_server(fake.make_app()), await aiohttp_server(fake.make_app())
    server.app[fake.KNOBS].url_base = url_of(other)
    async with front(role, tmp_path, server) as url:
        c = _client(url)
        with pytest.raises(openai.APIStatusError) as info:
            async for _ in await c.chat.completions.create(model=MODEL, messages=_msgs("hi"),
                                                           stream=True):
                pass
        assert info.value.status_code in (502, 503)
        assert "another host" in info.value.message
        with pytest.raises(openai.APIStatusError) as info:  # a pending whole reply: urls.get
            await c.chat.completions.create(model=MODEL, messages=_msgs("pending"))
        assert info.value.status_code in (502, 503)
        # the client leaving a pending one: urls.cancel is on the other host too
        task = asyncio.create_task(c.chat.completions.create(model=MODEL,
                                                             messages=_msgs("pending_long")))
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, openai.APIError):
            await task
        await asyncio.sleep(0.3)
    assert other.app[fake.KNOBS].requests == []
    assert len(_sent(server)) >= 3  # the creates did reach the backend itself
