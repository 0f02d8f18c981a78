"""Where the worker's backend is Ollama (--backend ollama), Ollama's own API passes
through every hop untouched: the same bytes as asked of the fake Ollama directly (its
`created_at` clock masked), the same status and error on a refusal."""

from __future__ import annotations

import json
import re

import aiohttp
import ollama
import pytest

from tests.conftest import url_of
from tests.fakes import ollama as fake_ollama
from tests.roles.ollama_hops import KEY, client, hops

MODEL = fake_ollama.TAGS[0]
MSGS = [{"role": "user", "content": "why is the sky blue?"}]
ASKED = [  # (method, path, body): what clients send, Open WebUI's unload included
    ("POST", "/api/chat", {"model": MODEL, "messages": MSGS}),
    ("POST", "/api/chat", {"model": MODEL, "messages": MSGS, "stream": False}),
    ("POST", "/api/generate", {"model": MODEL, "prompt": "Why?"}),
    ("POST", "/api/generate", {"model": MODEL, "keep_alive": 0, "prompt": ""}),
    ("POST", "/api/show", {"model": MODEL}),
    ("POST", "/api/embed", {"model": MODEL, "input": ["a", "bb"], "truncate": True}),
    ("POST", "/api/embeddings", {"model": MODEL, "prompt": "a"}),
    ("POST", "/api/chat", {"model": "no-such-model", "messages": MSGS}),
]
ON_THE_WORKER = [("GET", "/api/tags", None), ("GET", "/api/version", None),
                 ("GET", "/api/ps", None)]  # routers answer these from the cluster


def _mask(body: bytes) -> bytes:
    return re.sub(rb'"created_at": ?"[^"]+"', b'"created_at":"T"', body)


async def _ask(s: aiohttp.ClientSession, url: str, method: str, path: str, body) -> tuple:  # type: ignore[no-untyped-def]
    async with s.request(method, url + path, json=body) as r:
        return r.status, r.headers.get("Content-Type"), _mask(await r.read())


async def test_every_hop_relays_ollamas_api_byte_for_byte(fake_ollama_server, tmp_path):
    direct = url_of(fake_ollama_server)
    async with hops(tmp_path, backend="ollama", backend_url=direct) as urls, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
        for method, path, body in ASKED + ON_THE_WORKER:
            want = await _ask(s, direct, method, path, body)
            assert want[0] == 200 or want[2] == b'{"error": "model \'no-such-model\' not found"}'
            assert b'"created_at":"T"' in want[2] or want[0] != 200 \
                or path not in ("/api/chat", "/api/generate")
            for hop, url in urls.items():
                if (method, path, body) in ON_THE_WORKER and hop != "worker":
                    continue
                got = await _ask(s, url, method, path, body)
                if want[0] == 200:
                    assert got == want, (hop, path, body)
                elif hop == "worker":  # Ollama's error, re-encoded by eldric
                    assert (got[0], json.loads(got[2])) == (want[0], json.loads(want[2]))
                else:  # routers know the cluster's models: their own 404, Ollama-shaped
                    assert got[0] == 404
                    assert json.loads(got[2])["code"] == "model_not_found"


async def test_the_ollama_client_through_every_hop(fake_ollama_server, tmp_path):
    async with hops(tmp_path, backend="ollama", backend_url=url_of(fake_ollama_server)) as urls:
        for hop, url in urls.items():
            c = client(url)
            assert (await c.chat(MODEL, MSGS)).message.content == "Hello there!", hop
            parts = [p async for p in await c.chat(MODEL, MSGS, stream=True)]
            assert [p.message.content for p in parts] == ["Hello", " there", "!", ""]
            assert parts[-1].eval_count == fake_ollama.METRICS["eval_count"]
            assert (await c.generate(MODEL, "Why?")).context == [1, 2, 3]  # Ollama's own
            assert (await c.show(MODEL)).modelinfo["general.architecture"] == "llama"
            assert len((await c.embed(MODEL, "a")).embeddings) == 1
            assert MODEL in [m.model for m in (await c.list()).models]
            with pytest.raises(ollama.ResponseError) as err:
                await c.chat("no-such-model", MSGS)
            assert err.value.status_code == 404
