"""/v1/rerank and /v1/embeddings routed like chat: edge (key, allowed models, usage) ->
router (by model and path) -> a worker (vLLM kind) or a cloud worker (an OpenAI-compatible
provider with a /rerank, with failover between its backends). The openai SDK for
embeddings, aiohttp for rerank (no SDK has it). The fakes answer as vLLM's Re-rank API."""

from __future__ import annotations



import aiohttp
import openai
import pytest

from tests.conftest import run_cloud, run_eldric, until, url_of
from tests.fakes import openai_server as fake
from tests.fakes.openai_server import KNOBS

ADM = {"Authorization": "Bearer adm"}
LOCAL = fake.MODELS[1]  # BAAI/bge-small-en, served by the worker's vLLM
HOSTED = ["jina-reranker-v2", "jina-embeddings-v3"]  # the cloud provider's
DOCS = ["the cat sat on the mat", "stock prices fell", "a cat and a dog"]


async def _register(s: aiohttp.ClientSession, edge: str, name: str, **extra) -> str:
    async with s.post(edge + "/api/v1/clients/register", headers=ADM,
                      json={"name": name, **extra}) as r:
        assert r.status == 201, await r.text()
        return (await r.json())["api_key"]


async def _rerank(s: aiohttp.ClientSession, url: str, key: str | None, body) -> tuple:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    kw = {"data": body} if isinstance(body, (bytes, str)) else {"json": body}
    async with s.post(url + "/v1/rerank", headers=headers, **kw) as r:
        return r.status, r.headers, await r.json()


@pytest.fixture
async def fakes(aiohttp_server):
    local = await aiohttp_server(fake.make_app())
    hosted = [await aiohttp_server(fake.make_app()) for _ in range(2)]
    for h in hosted:
        h.app[KNOBS].models = list(HOSTED)
        h.app[KNOBS].api_key = "ck"
    return local, hosted


async def test_rerank_and_embeddings_through_edge_router_to_worker_and_cloud(tmp_path, fakes):
    local, (first, second) = fakes
    backends = f"jina:{url_of(first)}/v1:ck,jina2:{url_of(second)}/v1:ck"
    async with run_eldric("worker", tmp_path / "w", port=0, bind="127.0.0.1", backend="vllm",
                          backend_url=url_of(local)) as w, \
            run_cloud(tmp_path / "c", backends) as c, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=f"{w['worker']},{c['cloud']}", health_interval=200) as r, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=r["router"], admin_key="adm", usage_flush_interval=100) as e, \
            aiohttp.ClientSession() as s:
        edge = e["edge"]

        async def routable() -> bool:
            async with s.get(r["router"] + "/v1/models") as resp:
                return {m["id"] for m in (await resp.json())["data"]} >= {LOCAL, *HOSTED}
        await until(routable, timeout=10)
        key = await _register(s, edge, "team", allowed_models=["BAAI/*", "jina-*"])
        narrow = await _register(s, edge, "narrow", allowed_models=["BAAI/*"])

        # rerank: by model, to the worker or to the cloud (its provider gets its own key)
        for model, where in ((LOCAL, local), (HOSTED[0], first)):
            status, headers, got = await _rerank(s, edge, key, {
                "model": model, "query": "a cat", "documents": DOCS, "top_n": 2})
            assert status == 200, got
            assert [x["index"] for x in got["results"]] == [2, 0]  # best first, cut to 2
            assert got["results"][0]["document"] == {"text": DOCS[2]}
            sent = where.app[KNOBS].requests[-1]
            assert sent["path"] == "/v1/rerank"
            assert (sent["headers"].get("Authorization") == "Bearer ck") == (where is first)
        assert headers["X-Eldric-Worker"]  # the router says who answered

        # embeddings with the openai SDK, both ways too
        client = openai.AsyncOpenAI(base_url=edge + "/v1", api_key=key, max_retries=0)
        for model in (LOCAL, HOSTED[1]):
            emb = await client.embeddings.create(model=model, input=["a", "b"])
            assert [d.index for d in emb.data] == [0, 1] and emb.usage.prompt_tokens == 2

        # the edge's allowed models hold for rerank and embeddings
        status, _, got = await _rerank(s, edge, narrow, {"model": HOSTED[0], "query": "q",
                                                         "documents": ["d"]})
        assert status == 403 and got["error"]["code"] == "model_not_allowed"
        narrow_client = openai.AsyncOpenAI(base_url=edge + "/v1", api_key=narrow, max_retries=0)
        with pytest.raises(openai.PermissionDeniedError):
            await narrow_client.embeddings.create(model=HOSTED[1], input="x")
        # the key's rate limit holds for rerank as for chat
        tight = await _register(s, edge, "tight", rpm=1)
        ask = {"model": LOCAL, "query": "q", "documents": ["d"]}
        assert (await _rerank(s, edge, tight, ask))[0] == 200
        status, headers, got = await _rerank(s, edge, tight, ask)
        assert status == 429 and got["error"]["code"] == "rate_limit_key"
        assert headers["Retry-After"]
        # no key: 401; a model nobody serves: 404; not JSON: 400 (OpenAI's shape)
        assert (await _rerank(s, edge, None, {"model": LOCAL, "query": "q",
                                              "documents": []}))[0] == 401
        status, _, got = await _rerank(s, edge, key, {"model": "jina-nobody", "query": "q",
                                                      "documents": ["d"]})
        assert status == 404 and got["error"]["code"] == "model_not_found"
        status, _, got = await _rerank(s, edge, key, b"{not json")
        assert status == 400 and got["error"]["type"] == "invalid_request_error"
        # the backend's own 400 (no query) is relayed as it said
        status, _, got = await _rerank(s, edge, key, {"model": LOCAL, "documents": ["d"]})
        assert status == 400 and "query" in got["error"]["message"]

        # the cloud fails over from a provider's 429 to the next backend listing the model
        first.app[KNOBS].fail_status = 429
        first.app[KNOBS].fail_body = b'{"error": {"message": "slow down", "type": "rate_limit"}}'
        n_second = len(second.app[KNOBS].requests)
        status, headers, got = await _rerank(s, edge, key, {
            "model": HOSTED[0], "query": "dog", "documents": DOCS})
        assert status == 200 and got["results"][0]["index"] == 2
        assert len(second.app[KNOBS].requests) == n_second + 1
        # ... and when every one fails: 503 with the cause
        second.app[KNOBS].fail_status = 503
        second.app[KNOBS].fail_body = b'{"error": {"message": "down", "type": "server_error"}}'
        status, _, got = await _rerank(s, edge, key, {"model": HOSTED[0], "query": "q",
                                                      "documents": ["d"]})
        assert status == 503 and got["error"]["code"] == "upstream_unavailable"
        assert "jina: slow down" in got["error"]["message"]
        assert "jina2: down" in got["error"]["message"]

        # usage: rerank's tokens as the backend stated them (vLLM's usage.total_tokens)
        async def counted():  # type: ignore[no-untyped-def]
            async with s.get(edge + "/api/v1/usage?group_by=model", headers=ADM) as resp:
                rows = {row["model"]: row for row in (await resp.json())["rows"]}
            return rows if HOSTED[1] in rows else None
        rows = await until(counted, timeout=5)
        # "a cat" and the documents: 2 + 14 words (the fake's count); "dog": 1 + 14; the
        # refused and failed ones count nothing
        # two reranks ("a cat", and "q" + "d" for the rate-limited key) and one embeddings
        assert rows[LOCAL]["prompt_tokens"] == 16 + 2 + 2
        assert (rows[LOCAL]["requests"], rows[LOCAL]["errors"]) == (4, 1)  # and the 400
        assert rows[HOSTED[0]]["prompt_tokens"] == 16 + 15
        assert rows[HOSTED[0]]["estimated_requests"] == 0
        await client.close()
        await narrow_client.close()


async def test_the_cloud_has_a_rerank_head(tmp_path, fakes):
    """The cloud worker alone: /v1/rerank by model; a body naming none is a 400 (it must
    choose a backend), a model of a kind without rerank a 400 naming what it serves."""
    _, (first, _) = fakes
    async with run_cloud(tmp_path, f"jina:{url_of(first)}/v1:ck") as c, \
            aiohttp.ClientSession() as s:
        cloud = c["cloud"]
        await until(lambda: _health(s, cloud), timeout=5)
        status, headers, got = await _rerank(s, cloud, None, {
            "model": HOSTED[0], "query": "cat", "documents": DOCS})
        assert status == 200 and headers["X-Eldric-Backend"] == "jina"
        status, _, got = await _rerank(s, cloud, None, {"query": "cat", "documents": DOCS})
        assert status == 400 and got["error"]["param"] == "model"
        async with s.get(cloud + "/health") as resp:
            assert "/v1/rerank" in (await resp.json())["paths"]


async def _health(s: aiohttp.ClientSession, url: str) -> bool:
    async with s.get(url + "/health") as r:
        return r.status == 200






async def test_rerank_and_embeddings_reach_a_native_adapters_ops(tmp_path, aiohttp_server,
                                                                 monkeypatch):
    """A native kind's /v1/rerank and /v1/embeddings ops (the `pics` test adapter, as
    Cohere's /v2/rerank and /v2/embed would be) through edge -> router -> cloud."""
    from eldric.roles.cloud import kinds as cloud_kinds
    from eldric.roles.cloud.providers import KNOWN, Provider
    from tests.backends import pics

    monkeypatch.setitem(cloud_kinds.PROVIDER_KINDS, "pics", cloud_kinds._native(pics.PICS))
    monkeypatch.setitem(KNOWN, "pics", Provider("pics", "", None))
    server = await aiohttp_server(pics.make_app())
    async with run_cloud(tmp_path / "c", f"pics:{url_of(server)}") as c, \
            run_eldric("router", tmp_path / "r", port=0, bind="127.0.0.1",
                       workers=c["cloud"], health_interval=200) as r, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind="127.0.0.1",
                       routers=r["router"], api_key="sk-n") as e, \
            aiohttp.ClientSession() as s:
        async def routable() -> bool:
            async with s.get(r["router"] + "/v1/models") as resp:
                return "pic-1" in {m["id"] for m in (await resp.json())["data"]}
        await until(routable, timeout=10)
        async with s.get(c["cloud"] + "/health") as resp:
            paths = (await resp.json())["paths"]
        assert {"/v1/embeddings", "/v1/rerank"} <= set(paths)
        status, headers, got = await _rerank(s, e["edge"], "sk-n", {
            "model": "pic-1", "query": "dog", "documents": DOCS})
        assert status == 200 and [x["index"] for x in got["results"]][0] == 2
        assert headers["X-Eldric-Backend"] == "pics"
        assert server.app[pics.SEEN][-1] == {"model": "pic-1", "q": "dog", "docs": DOCS}
        # the API's own error, mapped (its 400 is the client's)
        status, _, got = await _rerank(s, e["edge"], "sk-n", {"model": "pic-1",
                                                              "documents": DOCS})
        assert status == 400 and got["error"]["message"] == "q is required"
        sdk = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key="sk-n", max_retries=0)
        emb = await sdk.embeddings.create(model="pic-1", input=["a b", "c"])
        assert [d.embedding for d in emb.data] == [[3.0, 0.5], [1.0, 0.5]]
        assert emb.usage.prompt_tokens == 3
        await sdk.close()
