"""Every OpenAI-compatible preset of the table, reached the way an operator would: each
local one as a worker's `--backend NAME`, each one as a cloud worker's
`--backends NAME:URL:KEY`, driven by the official openai SDK against a fake built from
the row (tests/fakes/preset.py: the row's URL path, auth header and model-list path).

One loop per role rather than one server per parametrised case: the fakes run in this
event loop, the worker in-process; a failure names the preset."""

from __future__ import annotations

import json
import subprocess
import sys

import aiohttp
import openai
import pytest

from eldric.backends.table import rows
from tests.conftest import run_cloud, run_eldric, url_of
from tests.fakes import preset
from tests.fakes.openai_server import KNOBS

MSG = [{"role": "user", "content": "hi"}]
WORDS = " w0 w1 w2 w3 w4"  # what the fake's chat answers (five tokens)

# Ollama is its own kind in both roles (its /api/tags list: tests/fakes/ollama.py)
PRESETS = [r for r in rows().values() if r.api == "openai" and r.available and r.name != "ollama"]
LOCAL = [r for r in PRESETS if r.where == "local" or r.name == "openai"]


def _key(row) -> str | None:  # type: ignore[no-untyped-def]
    return None if row.auth == "none" else f"k-{row.name}"


async def _talk(base: str, model: str) -> None:
    """Chat whole and streamed (with the usage chunk) through eldric at `base`."""
    async with openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=0) as c:
        reply = await c.chat.completions.create(model=model, messages=MSG)
        assert reply.choices[0].message.content == WORDS
        assert reply.usage is not None and reply.usage.completion_tokens == 5
        parts, usage = [], None
        async for chunk in await c.chat.completions.create(
                model=model, messages=MSG, stream=True, stream_options={"include_usage": True}):
            parts += [chunk.choices[0].delta.content or ""] if chunk.choices else []
            usage = chunk.usage or usage
        assert "".join(parts) == WORDS and usage is not None and usage.completion_tokens == 5


def _called(knobs, row, key) -> None:  # type: ignore[no-untyped-def]
    """The fake saw the row's model list and chat paths, with the row's auth."""
    paths = [r["path"] for r in knobs.requests]
    base = preset.root(row)
    if row.models is not None:
        assert base + row.models in paths, (row.name, paths)
    assert paths.count(base + "/chat/completions") == 2, (row.name, paths)
    for r in knobs.requests:
        sent = r["headers"].get("Authorization")
        assert sent == (f"Bearer {key}" if key else None), (row.name, r["path"], sent)


@pytest.mark.timeout(240)  # one loop over ~15-30 presets, on a shared machine
async def test_every_local_preset_through_the_worker(aiohttp_server, tmp_path):
    assert {"nim", "triton", "tabbyapi", "deepspeed-mii", "openllm", "ray-serve", "kserve-hf",
            "mlx", "localai", "lmdeploy", "mlc", "vllm", "llamacpp", "tgi"} <= {r.name for r in LOCAL}
    for row in LOCAL:
        key, model = _key(row), f"model-of-{row.name}"
        server = await aiohttp_server(preset.make_app(row, key=key, model=model))
        # the URL as its docs give it (KServe's /openai/v1), the host the fake's
        async with run_eldric("worker", tmp_path / row.name, backend=row.name, port=0,
                              bind="127.0.0.1", backend_url=url_of(server) + preset.root(row),
                              backend_api_key=key) as urls:
            await _talk(urls["worker"], model)
        _called(server.app[KNOBS], row, key)
        await server.close()


@pytest.mark.timeout(240)  # one loop over ~15-30 presets, on a shared machine
async def test_every_preset_through_the_cloud(aiohttp_server, tmp_path):
    """All of them at once behind one cloud worker, each listing its own model (a kind
    without a model list is asked by `backend/model`)."""
    assert {"openai", "xai", "deepseek", "groq", "together", "fireworks", "mistral",
            "perplexity", "openrouter", "cerebras", "anyscale", "gemini-openai",
            "cohere-openai", "nvidia", "ai21", "azure-ml"} <= {r.name for r in PRESETS}
    servers, entries = {}, []
    for row in PRESETS:
        key = f"k-{row.name}"  # a cloud backend always sends its key as a bearer token
        servers[row.name] = await aiohttp_server(preset.make_app(
            row, key=key, model=f"model-of-{row.name}"))
        entries.append(f"{row.name}:{url_of(servers[row.name])}{preset.root(row)}:{key}")
    async with run_cloud(tmp_path, ",".join(entries)) as urls:
        for row in PRESETS:
            model = f"model-of-{row.name}"
            await _talk(urls["cloud"], model if row.models is not None else f"{row.name}/{model}")
    for row in PRESETS:
        _called(servers[row.name].app[KNOBS], row, f"k-{row.name}")


async def test_a_preset_answering_429_fails_over_to_the_next(aiohttp_server, tmp_path):
    groq, cerebras = rows()["groq"], rows()["cerebras"]
    a = await aiohttp_server(preset.make_app(groq, key="kg", model="llama"))
    b = await aiohttp_server(preset.make_app(cerebras, key="kc", model="llama"))
    a.app[KNOBS].fail_status = 429
    a.app[KNOBS].fail_body = (b'{"error": {"message": "Rate limit reached", "type": "tokens",'
                              b' "code": "rate_limit_exceeded"}}')
    a.app[KNOBS].fail_headers = {"Retry-After": "7"}
    backends = (f"groq:{url_of(a)}/openai/v1:kg,"
                f"cerebras:{url_of(b)}/v1:kc")
    async with run_cloud(tmp_path, backends) as urls:
        async with openai.AsyncOpenAI(base_url=urls["cloud"] + "/v1", api_key="unused",
                                      max_retries=0) as c:
            raw = await c.chat.completions.with_raw_response.create(model="llama", messages=MSG)
            assert raw.headers["X-Eldric-Backend"] == "cerebras"
            assert raw.parse().choices[0].message.content == WORDS
            b.app[KNOBS].fail_status, b.app[KNOBS].fail_body = 429, a.app[KNOBS].fail_body
            b.app[KNOBS].fail_headers = {"Retry-After": "3"}
            # both limited: "come back later" relayed as sent, with when
            with pytest.raises(openai.RateLimitError) as info:
                await c.chat.completions.create(model="llama", messages=MSG)
            assert info.value.response.headers["Retry-After"] in ("3", "7")
    # groq was asked first (then held back while its Retry-After runs)
    assert "/openai/v1/chat/completions" in [r["path"] for r in a.app[KNOBS].requests]


async def test_a_key_the_preset_refuses_is_eldrics_503_not_the_clients_401(aiohttp_server,
                                                                          tmp_path):
    row = rows()["nvidia"]
    server = await aiohttp_server(preset.make_app(row, key="right", model="m"))
    async with run_cloud(tmp_path, f"nvidia:{url_of(server)}/v1:wrong") as urls:
        async with openai.AsyncOpenAI(base_url=urls["cloud"] + "/v1", api_key="unused",
                                      max_retries=0) as c:
            with pytest.raises(openai.APIStatusError) as info:
                await c.chat.completions.create(model="nvidia/m", messages=MSG)
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["cloud"] + "/api/v1/backends") as r:
                [listed] = (await r.json())["backends"]
    assert info.value.status_code == 503 and "key is refused" in info.value.message
    assert listed["auth_failed"] is True and listed["api_key"] == "…"  # masked
    assert [r["path"] for r in server.app[KNOBS].requests] == ["/v1/models"]  # no chat sent


@pytest.mark.parametrize("kind", ["lcm", "vl-jepa"])
def test_a_kind_with_no_server_api_is_refused_pointing_at_the_template(kind, tmp_path):
    ran = subprocess.run([sys.executable, "-m", "eldric", "--role", "worker", "--backend", kind,
                          "--port", "0", "--bind", "127.0.0.1", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 2
    assert f"--backend {kind}" in ran.stderr and "--backend template" in ran.stderr
    assert "Traceback" not in ran.stderr


async def test_a_kind_without_a_model_list_serves_its_configured_models(aiohttp_server,
                                                                       tmp_path):
    """Perplexity and AI21 list no models: the backend's `options.models` is the list
    (routable by model name, in /v1/models), the probe still checks the key."""
    from eldric import registry
    from eldric.cli import load_config
    from tests.conftest import serving

    pplx, ai21 = rows()["perplexity"], rows()["ai21"]
    assert pplx.models is None and ai21.models is None
    sp = await aiohttp_server(preset.make_app(pplx, key="kp", model="sonar"))
    sa = await aiohttp_server(preset.make_app(ai21, key="ka", model="jamba-mini"))
    cfg = tmp_path / "cloud.json"
    cfg.write_text(json.dumps({"cloud": {"backends": [
        {"name": "perplexity", "url": url_of(sp), "api_key": "kp",
         "options": {"models": ["sonar"]}},
        {"name": "ai21", "url": url_of(sa) + "/studio/v1", "api_key": "wrong",
         "options": {"models": ["jamba-mini"]}}]}}))
    roles = registry.resolve("cloud")
    loaded = load_config(roles, {"port": 0, "bind": "127.0.0.1",
                                 "data_dir": str(tmp_path / "d")}, {}, str(cfg))
    async with serving(roles, loaded) as urls:
        await _talk(urls["cloud"], "sonar")
        async with openai.AsyncOpenAI(base_url=urls["cloud"] + "/v1", api_key="unused",
                                      max_retries=0) as c:
            listed = {(m.id, m.owned_by) async for m in c.models.list()}
            assert ("sonar", "perplexity") in listed
            assert ("jamba-mini", "ai21") not in listed  # its key refused: not offered
            with pytest.raises(openai.APIStatusError) as info:
                await c.chat.completions.create(model="ai21/jamba-mini", messages=MSG)
    assert info.value.status_code == 503 and "key is refused" in info.value.message
    paths = [r["path"] for r in sp.app[KNOBS].requests]
    assert "/models" in paths and paths.count("/chat/completions") == 2
