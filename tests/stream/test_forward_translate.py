"""The translation hook of the core (forward(translate=…)) and the worker's translated
routes, with a toy client API ("/v1/shout": {"model", "say", "stream"} in, the reply's text
upper-cased out) so the plumbing is tested apart from any real API's translator."""

from __future__ import annotations

import json

import aiohttp
import msgspec
import pytest

from eldric.errors import BadRequest
from eldric.wire import dialect
from eldric.wire.translate import Translation
from eldric.wire.translated import TRANSLATED
from tests.conftest import run_eldric, url_of
from tests.fakes import openai_server

PATH = "/v1/shout"
M = openai_server.MODELS[0]


class Shout:
    upstream_path = "/v1/chat/completions"
    media_type = "text/x-shout"

    def __init__(self, body: bytes) -> None:
        try:
            data = msgspec.json.decode(body)
            self.model, self.say = data["model"], data["say"]
        except (msgspec.DecodeError, KeyError, TypeError):
            raise BadRequest("say what?", param="say", code="bad_shout") from None
        self.stream = bool(data.get("stream"))
        self.events = 0

    def request(self) -> bytes:
        return msgspec.json.encode({"model": self.model, "stream": self.stream,
                                    "messages": [{"role": "user", "content": self.say}]})

    def whole(self, body: bytes) -> bytes:
        data = msgspec.json.decode(body)
        return msgspec.json.encode({"shout": data["choices"][0]["message"]["content"].upper()})

    def feed(self, event: bytes) -> bytes:
        data = event[len(b"data: "):]
        if data == b"[DONE]":
            return b""
        self.events += 1
        delta = msgspec.json.decode(data)["choices"][0]["delta"].get("content") or ""
        return delta.upper().encode() + b"\n" if delta else b""

    def close(self) -> bytes:
        return f"END {self.events}\n".encode()

    def cut(self, status: int, message: str, code: str) -> bytes:
        return f"CUT {status} {code}\n".encode()


@pytest.fixture
def shout(monkeypatch):
    monkeypatch.setitem(TRANSLATED, PATH, Translation(Shout))


@pytest.fixture
async def fake(aiohttp_server):
    return await aiohttp_server(openai_server.make_app())


async def _worker(tmp_path, fake):
    return run_eldric("worker", tmp_path, backend="vllm", backend_url=url_of(fake),
                      port=0, bind="127.0.0.1")


async def test_a_whole_reply_is_translated(shout, fake, tmp_path):
    async with await _worker(tmp_path, fake) as urls, aiohttp.ClientSession() as s:
        async with s.post(urls["worker"] + PATH, json={"model": M, "say": "hi"}) as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            assert (await r.json()) == {"shout": " W0 W1 W2 W3 W4"}
        sent = fake.app[openai_server.KNOBS].requests[-1]
        assert sent["path"] == "/v1/chat/completions"  # the translation went upstream
        async with s.get(urls["worker"] + "/health") as r:
            health = await r.json()
        assert PATH in health["translated"] and PATH in health["paths"]


async def test_a_stream_is_translated_event_by_event(shout, fake, tmp_path):
    async with await _worker(tmp_path, fake) as urls, aiohttp.ClientSession() as s:
        async with s.post(urls["worker"] + PATH,
                          json={"model": M, "say": "hi", "stream": True}) as r:
            assert r.status == 200 and r.content_type == "text/x-shout"
            text = await r.text()
    # each event but [DONE] was fed; those without text send nothing
    assert text.splitlines() == [" W0", " W1", " W2", " W3", " W4", "END 7"]


async def test_a_bad_body_is_the_translators_400(shout, fake, tmp_path):
    async with await _worker(tmp_path, fake) as urls, aiohttp.ClientSession() as s:
        async with s.post(urls["worker"] + PATH, data=b"{}") as r:
            assert r.status == 400
            err = (await r.json())["error"]
    assert (err["param"], err["code"]) == ("say", "bad_shout")
    assert fake.app[openai_server.KNOBS].requests == []


async def test_a_stream_cut_mid_reply_ends_in_the_translators_event(shout, fake, tmp_path):
    fake.app[openai_server.KNOBS].die_after = 2
    async with await _worker(tmp_path, fake) as urls, aiohttp.ClientSession() as s:
        async with s.post(urls["worker"] + PATH,
                          json={"model": M, "say": "hi", "stream": True}) as r:
            assert r.status == 200
            lines = (await r.text()).splitlines()
    assert lines == [" W0", " W1", "CUT 502 upstream_error"]


async def test_an_upstream_refusal_is_not_translated_but_in_the_paths_dialect(
        shout, fake, tmp_path, monkeypatch):
    knobs = fake.app[openai_server.KNOBS]
    knobs.fail_status, knobs.fail_body = 404, json.dumps({"error": {
        "message": "no such model", "type": "NotFoundError", "param": None,
        "code": 404}}).encode()
    async with await _worker(tmp_path, fake) as urls, aiohttp.ClientSession() as s:
        async with s.post(urls["worker"] + PATH, json={"model": M, "say": "hi"}) as r:
            assert r.status == 404
            assert (await r.json())["error"]["message"] == "no such model"


@pytest.mark.parametrize("path, shape", [
    ("/v1/messages", {"type": "error", "error": {"type": "not_found_error",
                                                 "message": "m", "code": "c"}}),
    ("/api/chat", {"error": "m", "code": "c"}),
    ("/api/v1/workers", {"error": {"message": "m", "type": "not_found_error", "param": None,
                                   "code": "c"}}),
])
def test_each_path_has_its_dialect(path, shape):
    d = dialect.of_path(path)
    assert json.loads(d.error(404, "m", code="c")) == shape
    openai_shaped = dialect.OPENAI.error(404, "m", code="c")
    assert json.loads(d.from_openai(404, openai_shaped)) == shape


async def test_the_router_routes_a_translated_path_by_its_model(shout, fake, tmp_path):
    async with await _worker(tmp_path, fake) as w, \
            run_eldric("router", tmp_path, workers=w["worker"], port=0,
                       bind="127.0.0.1") as r, aiohttp.ClientSession() as s:
        async with s.post(r["router"] + PATH, json={"model": M, "say": "hi"}) as resp:
            assert resp.status == 200
            assert (await resp.json()) == {"shout": " W0 W1 W2 W3 W4"}
            assert resp.headers["X-Eldric-Worker"]
        async with s.post(r["router"] + PATH, json={"model": "nope", "say": "hi"}) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "model_not_found"


async def test_an_unknown_ollama_route_answers_in_ollamas_shape(fake, tmp_path):
    async with await _worker(tmp_path, fake) as urls, aiohttp.ClientSession() as s:
        async with s.post(urls["worker"] + "/api/nothing-here", json={}) as r:
            assert r.status == 404
            assert (await r.json()) == {"error": "no such route", "code": "not_found"}


class Brittle(Shout):
    """A translator that cannot read the third token, nor any whole reply: as if the
    upstream sent what its API does not promise."""

    def whole(self, body: bytes) -> bytes:
        raise TypeError("'int' object is not iterable")

    def feed(self, event: bytes) -> bytes:
        if b" w2" in event:
            raise TypeError("'int' object is not iterable")
        return super().feed(event)


async def test_a_translator_that_cannot_read_the_reply_is_the_upstreams_502(
        fake, tmp_path, monkeypatch):
    monkeypatch.setitem(TRANSLATED, PATH, Translation(Brittle))
    async with await _worker(tmp_path, fake) as urls, aiohttp.ClientSession() as s:
        async with s.post(urls["worker"] + PATH, json={"model": M, "say": "hi"}) as r:
            assert r.status == 502
            assert (await r.json())["error"]["code"] == "upstream_error"
        async with s.post(urls["worker"] + PATH,
                          json={"model": M, "say": "hi", "stream": True}) as r:
            assert r.status == 200
            lines = (await r.text()).splitlines()  # a whole stream, ended by the cut
        async with s.get(urls["worker"] + "/health") as r:
            assert (await r.json())["status"] == "healthy"  # not the backend's fault alone
    assert lines == [" W0", " W1", "CUT 502 upstream_error"]
