"""--cache semantic end to end: the openai SDK → edge → router → worker → a fake backend
serving chat (tests/fakes/openai_server.py) and bag-of-words embeddings
(tests/fakes/embeddings.py). A paraphrase hits with kind=semantic; an unrelated
question misses; the embeddings backend failing is a miss, never the client's error."""

from __future__ import annotations

import pytest
from aiohttp import web

from tests.conftest import run_eldric, until
from tests.fakes import embeddings as fake_emb
from tests.fakes import openai_server as fake_chat
from tests.replycache.test_edge_cache import counts, sdk
from tests.roles.edge_usage.helpers import _routes

pytestmark = pytest.mark.asyncio
CHAT, EMB = fake_chat.MODELS


@pytest.fixture
async def backend(aiohttp_server):
    app = web.Application()
    app[fake_chat.KNOBS] = fake_chat.Knobs()
    app[fake_emb.KNOBS] = fake_emb.Knobs()
    app.router.add_get("/v1/models", fake_chat.models)
    app.router.add_post("/v1/chat/completions", fake_chat.chat)
    app.router.add_post("/v1/embeddings", fake_emb.embeddings)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), app[fake_emb.KNOBS]


async def ask(c, text: str):
    raw = await c.chat.completions.with_raw_response.create(
        model=CHAT, messages=[{"role": "user", "content": text}], temperature=0)
    return raw.headers.get("X-Eldric-Cache"), raw.parse()


async def test_paraphrase_hits_semantically_through_the_edge(tmp_path, backend):
    url, knobs = backend
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1",
                          backend="vllm", backend_url=url) as w, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=w["worker"], health_interval=1000) as r:
        await until(lambda: _routes(r["router"]), timeout=15)
        async with run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0,
                              bind="127.0.0.1", routers=r["router"], health_interval=1000,
                              require_api_key=False, global_rpm=0, per_ip_rpm=0,
                              per_key_rpm=0, cache="semantic", cache_embedding_model=EMB,
                              cache_similarity=0.8) as e:
            edge = e["edge"]
            c = sdk(edge)
            state, first = await ask(c, "what is the capital city of france")
            assert state == "miss"
            state, para = await ask(c, "the capital city of france is what")
            assert state == "hit" and para.id == first.id
            assert (await ask(c, "how do I bake sourdough bread"))[0] == "miss"
            knobs.fail_status = 500  # embeddings down: a miss, the request answered
            state, reply = await ask(c, "capital city of france what is it then")
            assert state == "miss" and reply.choices
            got = counts(edge)
            assert got[("hit", "semantic")] == 1 and knobs.calls >= 3
