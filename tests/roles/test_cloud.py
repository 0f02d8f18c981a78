"""The cloud role in front of fake OpenAI-compatible providers, driven by the openai SDK."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest

from tests.conftest import free_port, run_cloud, url_of
from tests.fakes import openai_server
from tests.fakes.openai_server import KNOBS

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def provider(aiohttp_server):
    """start(models, key=None) -> (server, base URL ending in /v1, knobs)"""

    async def start(models, key=None, port=None):
        server = await aiohttp_server(openai_server.make_app(), port=port or free_port())
        server.app[KNOBS].models = list(models)
        server.app[KNOBS].api_key = key
        return server, url_of(server) + "/v1", server.app[KNOBS]

    return start


async def test_routing_by_model_priority_and_explicit_backend(provider, tmp_path):
    (_, ua, ka), (_, ub, _) = await provider(["gpt-a", "shared"]), await provider(["llama-b", "shared"])
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"backends": [
        {"name": "alpha", "type": "openai_compatible", "url": ua, "priority": 100},
        {"name": "beta", "type": "openai_compatible", "url": ub, "priority": 10}]}))
    from eldric import config, registry

    role = registry.load("cloud")
    loaded = config.load({"cloud": (role.config, role.defaults())}, str(cfg), {}, {})
    assert [b.name for b in loaded.roles["cloud"].backends] == ["alpha", "beta"]
    from eldric.app import serve

    ready = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    c = loaded.roles["cloud"]
    c.port, c.bind_address = 0, "127.0.0.1"
    loaded.process.data_dir = str(tmp_path / "d")
    task = asyncio.create_task(serve([role], loaded.roles, loaded.process,
                                     on_ready=ready.set_result, stop=stop))
    urls = await ready
    try:
        client = openai.AsyncOpenAI(base_url=urls["cloud"] + "/v1", api_key="unused")
        raw = await client.chat.completions.with_raw_response.create(model="llama-b", messages=MSG)
        assert raw.headers["X-Eldric-Backend"] == "beta"
        raw = await client.chat.completions.with_raw_response.create(model="gpt-a", messages=MSG)
        assert raw.headers["X-Eldric-Backend"] == "alpha"
        raw = await client.chat.completions.with_raw_response.create(model="shared", messages=MSG)
        assert raw.headers["X-Eldric-Backend"] == "beta"  # priority 10 beats 100
        raw = await client.chat.completions.with_raw_response.create(model="alpha/shared",
                                                                     messages=MSG)
        assert raw.headers["X-Eldric-Backend"] == "alpha"  # explicit
        assert json.loads(ka.requests[-1]["body"])["model"] == "shared"  # prefix removed
        listed = {(m.id, m.owned_by) async for m in client.models.list()}
        assert listed == {("gpt-a", "alpha"), ("shared", "alpha"), ("llama-b", "beta"),
                          ("shared", "beta")}
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(model="nope", messages=MSG)
        assert "127.0.0.1" not in info.value.message  # names nothing of the backends
        await client.close()
    finally:
        stop.set()
        await task


async def test_default_backend_for_unknown_models(provider, tmp_path):
    _, ua, ka = await provider(["x"])
    ka.models = ["x"]
    async with run_cloud(tmp_path, f"alpha:{ua}", default_backend="alpha") as urls:
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["cloud"] + "/v1/chat/completions",
                              json={"model": "meta-llama/Llama-3.2-3B-Instruct",
                                    "messages": MSG}) as r:
                # sent to alpha, which does not know it: its own 404, relayed
                assert r.status == 404 and r.headers["X-Eldric-Backend"] == "alpha"


async def test_failover_to_the_next_backend_listing_the_model(provider, tmp_path):
    (sa, ua, ka), (_, ub, _) = await provider(["m"]), await provider(["m"])
    async with run_cloud(tmp_path, f"first:{ua},second:{ub}") as urls:
        async with aiohttp.ClientSession() as s:
            ka.fail_status, ka.fail_body = 500, b'{"error": {"message": "boom"}}'
            async with s.post(urls["cloud"] + "/v1/chat/completions",
                              json={"model": "m", "messages": MSG}) as r:
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "second"
            await sa.close()  # now first is down: skipped
            for _ in range(3):
                async with s.post(urls["cloud"] + "/v1/chat/completions",
                                  json={"model": "m", "messages": MSG}) as r:
                    assert r.status == 200 and r.headers["X-Eldric-Backend"] == "second"


async def test_usage_counted_on_streams_and_stripped_when_not_asked(provider, tmp_path):
    _, ua, ka = await provider(["m"])
    async with run_cloud(tmp_path, f"alpha:{ua}") as urls:
        client = openai.AsyncOpenAI(base_url=urls["cloud"] + "/v1", api_key="unused")
        chunks = [c async for c in await client.chat.completions.create(
            model="m", messages=MSG, stream=True)]
        assert all(c.usage is None for c in chunks)  # not asked: not shown
        assert json.loads(ka.requests[-1]["body"])["stream_options"] == {"include_usage": True}
        chunks = [c async for c in await client.chat.completions.create(
            model="m", messages=MSG, stream=True, stream_options={"include_usage": True})]
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
        await client.chat.completions.create(model="m", messages=MSG)
        await client.close()
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["cloud"] + "/metrics") as r:
                text = await r.text()
            async with s.get(urls["cloud"] + "/api/v1/backends") as r:
                usage = (await r.json())["backends"][0]["usage"]["m"]
    assert 'eldric_cloud_tokens_total{backend="alpha",kind="completion",model="m"} 15.0' in text
    assert 'eldric_cloud_requests_total{backend="alpha",model="m"} 3.0' in text
    assert usage == {"requests": 3, "errors": 0, "prompt_tokens": 9, "completion_tokens": 15}


async def test_keys_masked_auth_failure_reported_runtime_admin(provider, tmp_path, monkeypatch):
    monkeypatch.setenv("ELDRIC_TEST_PROVIDER_KEY", "sk-provider-secret-1234")
    _, ua, ka = await provider(["m"], key="sk-provider-secret-1234")
    _, ub, kb = await provider(["n"], key="the-right-key")
    async with run_cloud(tmp_path, f"good:{ua}:$ELDRIC_TEST_PROVIDER_KEY,bad:{ub}:wrong-key-5678",
                     admin_key="adm") as urls:
        base = urls["cloud"]
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/api/v1/backends") as r:
                text = await r.text()
                listed = {b["name"]: b for b in json.loads(text)["backends"]}
            assert "sk-provider-secret" not in text and "wrong-key" not in text
            assert listed["good"]["api_key"] == "…1234" and listed["good"]["healthy"]
            assert listed["bad"]["auth_failed"] is True and not listed["bad"]["healthy"]
            async with s.get(base + "/health") as r:
                health = await r.json()
            assert health["worker_type"] == "cloud" and health["worker_id"].startswith("cld-")
            assert health["status"] == "degraded"
            assert health["backends"] == {"total": 2, "healthy": 1, "unhealthy": 1, "degraded": 0}
            assert health["models"] == ["m"] and health["models_available"] == 1
            # "n" only the refused backend would serve: it never got a model list with a
            # refused key, so "n" is unknown (404), and the reply names no key.
            async with s.post(base + "/v1/chat/completions", json={"model": "n", "messages": MSG}) as r:
                assert r.status == 404
                assert "wrong-key" not in await r.text()
            # Runtime: add (hot), test, remove; admin key required.
            spec = {"name": "third", "type": "openai_compatible", "url": ub,
                    "api_key": "the-right-key"}
            async with s.post(base + "/api/v1/backends", json=spec) as r:
                assert r.status == 401
            adm = {"Authorization": "Bearer adm"}
            async with s.post(base + "/api/v1/backends", json=spec, headers=adm) as r:
                assert r.status == 201 and (await r.json())["api_key"] == "…-key"
            async with s.post(base + "/v1/chat/completions", json={"model": "n", "messages": MSG}) as r:
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "third"
            async with s.post(base + "/api/v1/backends/bad/test", headers=adm) as r:
                assert (await r.json())["auth_failed"] is True
            async with s.delete(base + "/api/v1/backends/third", headers=adm) as r:
                assert r.status == 200
            async with s.post(base + "/v1/chat/completions", json={"model": "n", "messages": MSG}) as r:
                assert r.status == 404


def test_backends_flag_parsing_and_name_inference(tmp_path):
    from eldric import registry
    from eldric.cli import load_config
    from eldric.errors import ConfigError
    from eldric.roles.cloud.backends import make_backend
    from eldric.bus import Bus

    role = registry.load("cloud")
    text = ("openai,anthropic::$ANT_KEY,xai:https://api.x.ai/v1:xai-key,"
            "ollama-remote:http://10.0.0.5:11434,groq")
    cfg = load_config([role], {"backends": text}, {}).roles["cloud"]
    env = {"OPENAI_API_KEY": "sk-o", "ANT_KEY": "sk-a", "GROQ_API_KEY": "gsk"}
    bus = Bus()
    got = {s.name: make_backend(s, bus, env) for s in cfg.backends}
    assert (got["openai"].type, got["openai"].url, got["openai"].key) == \
        ("openai_compatible", "https://api.openai.com/v1", "sk-o")
    assert (got["anthropic"].type, got["anthropic"].key) == ("anthropic", "sk-a")
    assert (got["xai"].url, got["xai"].key) == ("https://api.x.ai/v1", "xai-key")
    assert (got["ollama-remote"].type, got["ollama-remote"].url, got["ollama-remote"].key) == \
        ("ollama", "http://10.0.0.5:11434", None)
    assert got["ollama-remote"].openai_base == "http://10.0.0.5:11434/v1"
    assert got["groq"].key == "gsk"
    spec = cfg.backends[1]
    with pytest.raises(ConfigError, match="ANT_KEY is not set"):
        make_backend(spec, bus, {})


async def test_registers_with_the_controller_as_cloud(provider, tmp_path, aiohttp_server):
    from tests.fakes import controller as fake_controller
    from tests.fakes.controller import STATE

    ctl = await aiohttp_server(fake_controller.make_app())
    _, ua, _ = await provider(["gpt-x"])
    async with run_cloud(tmp_path, f"alpha:{ua}", controller=url_of(ctl), heartbeat_interval=50):
        for _ in range(100):
            if ctl.app[STATE].heartbeats:
                break
            await asyncio.sleep(0.02)
    reg = ctl.app[STATE].registrations[0]
    assert reg["worker_type"] == "cloud" and reg["models"] == ["gpt-x"]
    wid, beat = ctl.app[STATE].heartbeats[0]
    assert wid == reg["id"] and beat["models"] == ["gpt-x"]


def test_provider_keys_never_logged(eldric_proc, tmp_path):
    import urllib.error
    import urllib.request

    port = free_port()
    dead = f"http://127.0.0.1:{free_port()}/v1"
    proc = eldric_proc("--role", "cloud", "--port", str(port), "--bind", "127.0.0.1",
                       "--data-dir", str(tmp_path), "--log-format", "json",
                       "--backends", f"alpha:{dead}:sk-alpha-secret-9876,openai",
                       "--admin-key", "adm-secret",
                       env={"OPENAI_API_KEY": "sk-openai-env-secret"})
    proc.wait_http(f"http://127.0.0.1:{port}/metrics")
    base = f"http://127.0.0.1:{port}"
    body = json.dumps({"name": "gamma", "url": dead, "api_key": "sk-gamma-secret"}).encode()
    req = urllib.request.Request(base + "/api/v1/backends", data=body,
                                 headers={"Authorization": "Bearer adm-secret"})
    listing = urllib.request.urlopen(req).read().decode()
    listing += urllib.request.urlopen(base + "/api/v1/backends").read().decode()
    req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(
        {"model": "alpha/x", "messages": MSG}).encode())
    try:
        urllib.request.urlopen(req).read()
    except urllib.error.HTTPError:
        pass
    out = proc.stop()
    assert '"path":"/v1/chat/completions"' in out
    for secret in ("sk-alpha-secret-9876", "sk-openai-env-secret", "sk-gamma-secret", "adm-secret"):
        assert secret not in out and secret not in listing


async def test_ollama_and_azure_backends(aiohttp_server, tmp_path):
    from aiohttp import web

    from tests.fakes import ollama as fake_ollama

    ollama = await aiohttp_server(fake_ollama.make_app())
    seen = []

    async def azure_models(request):
        if request.headers.get("api-key") != "az-key" or "api-version" not in request.query:
            return web.json_response({"error": {"code": "401", "message": "Access denied"}},
                                     status=401)
        return web.json_response({"data": [{"id": "gpt-4o-deploy", "object": "model"}]})

    async def azure_chat(request):
        seen.append((request.match_info["dep"], request.query.get("api-version"),
                     request.headers.get("api-key"), request.headers.get("Authorization")))
        return web.json_response({
            "id": "chatcmpl-az", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "from azure"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}})

    app = web.Application()
    app.router.add_get("/openai/models", azure_models)
    app.router.add_post("/openai/deployments/{dep}/chat/completions", azure_chat)
    azure = await aiohttp_server(app)
    # azure_openai is not inferred from a name: its type comes from the config file.
    cfg = tmp_path / "cloud.json"
    cfg.write_text(json.dumps({"port": 0, "bind_address": "127.0.0.1", "backends": [
        {"name": "ollama-remote", "url": url_of(ollama)},
        {"name": "az", "type": "azure_openai", "url": url_of(azure), "api_key": "az-key",
         "api_version": "2024-10-21"}]}))
    import subprocess
    import sys
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "eldric", "--role", "cloud", "--config",
                             str(cfg), "--port", str(port), "--data-dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/metrics", timeout=1)
                break
            except Exception:
                await asyncio.sleep(0.1)
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused")
        owned = {m.id: m.owned_by async for m in client.models.list()}
        assert owned == {"llama3.2:3b": "ollama-remote", "nomic-embed-text:latest": "ollama-remote",
                         "gpt-4o-deploy": "az"}
        reply = await client.chat.completions.create(model="llama3.2:3b", messages=MSG)
        assert reply.choices[0].message.content == "Hello there!"  # via Ollama's /v1
        reply = await client.chat.completions.create(model="gpt-4o-deploy", messages=MSG)
        assert reply.choices[0].message.content == "from azure"
        await client.close()
    finally:
        proc.terminate()
        proc.wait(10)
    assert seen == [("gpt-4o-deploy", "2024-10-21", "az-key", None)]


async def test_paths_models_retrieve_and_not_here(provider, aiohttp_server, tmp_path):
    from tests.fakes import anthropic as fake_anthropic

    (_, ua, ka), (_, ub, _) = await provider(["m"]), await provider(["m"])
    claude = await aiohttp_server(fake_anthropic.make_app())
    only_claude = f"anthropic:{url_of(claude)}:{fake_anthropic.API_KEY}"
    async with run_cloud(tmp_path / "a", f"first:{ua},second:{ub}") as a, \
            run_cloud(tmp_path / "b", only_claude) as b:
        async with aiohttp.ClientSession() as s:
            # the native paths first, then the client APIs translated to them
            async with s.get(a["cloud"] + "/health") as r:
                assert (await r.json())["paths"][:3] == [
                    "/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
            async with s.get(b["cloud"] + "/health") as r:  # Anthropic: chat only
                paths = (await r.json())["paths"]
                assert paths[0] == "/v1/chat/completions" and "/v1/completions" not in paths
                assert "/v1/messages" in paths  # and its own Messages API
            # a backend that does not implement a path: the next one is asked; the
            # first is not counted as failing
            ka.fail_status, ka.fail_body = 501, b'{"error": {"message": "not implemented"}}'
            async with s.post(a["cloud"] + "/v1/chat/completions",
                              json={"model": "m", "messages": MSG}) as r:
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "second"
            async with s.get(a["cloud"] + "/api/v1/backends") as r:
                first = next(b for b in (await r.json())["backends"] if b["name"] == "first")
                assert first["healthy"] is True and first["failures"] == 0
        client = openai.AsyncOpenAI(base_url=a["cloud"] + "/v1", api_key="x")
        assert (await client.models.retrieve("m")).owned_by == "first"
        assert (await client.models.retrieve("second/m")).owned_by == "second"
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("nope")


async def test_health_has_the_documented_shape(provider, tmp_path):
    """WorkerHealth's fields (what routers and the controller read), plus the backends
    as one object and models_available, as the cloud worker's documentation shows."""
    _, ua, _ = await provider(["m1", "m2"])
    async with run_cloud(tmp_path, f"alpha:{ua},down:http://127.0.0.1:{free_port()}") as urls:
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["cloud"] + "/health") as r:
                assert r.status == 200
                health = await r.json()
    from eldric.wire.cluster import WorkerHealth

    assert set(WorkerHealth.__struct_fields__) <= set(health)
    assert health["status"] == "degraded" and health["worker_type"] == "cloud"
    assert health["backends"] == {"total": 2, "healthy": 1, "unhealthy": 1, "degraded": 0}
    assert health["models_available"] == 2 and health["models"] == ["m1", "m2"]
    assert not [k for k in health if k.startswith("backends_")]  # one object, not flat fields


async def test_a_base_url_without_v1_is_found_and_a_failing_model_list_is_degraded(
        provider, aiohttp_server, tmp_path):
    """`local:http://127.0.0.1:8000` for a vLLM: its /models is a 404, its /v1/models the
    list, so the backend's URL becomes …/v1 and requests go there. A server with no model
    list at either place answers, but is degraded, not healthy: in /api/v1/backends, in
    /health, and to the test endpoint."""
    server, _, knobs = await provider(["served-model"])
    bare = await aiohttp_server(aiohttp.web.Application())  # 404 for every path
    local, nolist = url_of(server), url_of(bare)
    async with run_cloud(tmp_path, f"local:{local},nolist:{nolist}", admin_key="adm") as urls:
        base = urls["cloud"]
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/api/v1/backends") as r:
                listed = {b["name"]: b for b in (await r.json())["backends"]}
            assert listed["local"]["url"] == local + "/v1"
            assert (listed["local"]["status"], listed["local"]["healthy"]) == ("healthy", True)
            assert listed["local"]["models"] == ["served-model"]
            assert listed["nolist"]["url"] == nolist  # /v1 did not answer either: kept
            assert (listed["nolist"]["status"], listed["nolist"]["healthy"]) == ("degraded", False)
            assert listed["nolist"]["models_error"] == "model list answered HTTP 404"

            async with s.post(base + "/v1/chat/completions",
                              json={"model": "served-model", "messages": MSG}) as r:
                assert r.status == 200 and r.headers["X-Eldric-Backend"] == "local"
            assert knobs.requests[-1]["path"] == "/v1/chat/completions"

            async with s.get(base + "/health") as r:
                assert r.status == 200
                health = await r.json()
            assert health["status"] == "degraded"
            assert health["backends"] == {"total": 2, "healthy": 1, "unhealthy": 0, "degraded": 1}
            async with s.post(base + "/api/v1/backends/nolist/test",
                              headers={"Authorization": "Bearer adm"}) as r:
                tested = await r.json()
            assert tested["ok"] is False and tested["error"] == "model list answered HTTP 404"


async def test_a_versioned_url_is_not_second_guessed(aiohttp_server, tmp_path):
    """A URL that already names its API version (…/v1beta) is used as given: no /v1 added."""
    seen: list[str] = []

    async def record(request):
        seen.append(request.path)
        return aiohttp.web.json_response({"error": {"message": "no", "type": "x",
                                                    "param": None, "code": 404}}, status=404)

    app = aiohttp.web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = await aiohttp_server(app)
    async with run_cloud(tmp_path, f"beta:{url_of(server)}/v1beta") as urls:
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["cloud"] + "/api/v1/backends") as r:
                (b,) = (await r.json())["backends"]
    assert b["status"] == "degraded" and b["url"] == url_of(server) + "/v1beta"
    assert seen and set(seen) == {"/v1beta/models"}
