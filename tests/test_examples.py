"""examples/ is a cluster: its five configs, with the secrets from their .env files, start
together and serve a chat through edge → router → worker (and a cloud model through
edge → router → cloud).

Each role runs as `eldric --role R --config examples/R.json` with examples/R.env as its
environment, as systemd/eldric@.service runs it. Only what must differ on a test machine
is overridden: ports, --bind, --data-dir, the controller's and routers' URLs, backend URLs
(fakes), and the edge's certificate (made with trustme).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme

from tests.conftest import free_port, until, url_of
from tests.fakes import anthropic as fake_anthropic
from tests.fakes import ollama as fake_ollama
from tests.fakes import openai_server as fake_openai

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MSG = [{"role": "user", "content": "hi"}]


def env_file(role: str) -> dict[str, str]:
    """examples/<role>.env as systemd's EnvironmentFile= reads it (KEY=VALUE, # comments)."""
    out = {}
    for line in (EXAMPLES / f"{role}.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_the_env_files_hold_the_secrets_and_agree_on_the_cluster_key():
    cluster_key = env_file("controller")["ELDRIC_CONTROLLER_CLUSTER_KEY"]
    for role in ("worker", "router", "cloud"):
        assert env_file(role)[f"ELDRIC_{role.upper()}_API_KEY"] == cluster_key, role
    for role in ("controller", "worker", "router", "cloud", "edge"):
        text = (EXAMPLES / f"{role}.json").read_text()
        assert "change-me" not in text and "_key\": \"" not in text.replace(
            '"api_key": "$', ""), f"a secret in examples/{role}.json"


def _eldric_env(role: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELDRIC_")}
    return {**env, **env_file(role), **extra}


async def _json(s: aiohttp.ClientSession, url: str, **kw) -> dict | None:  # type: ignore[no-untyped-def]
    try:
        async with s.get(url, **kw) as r:
            return await r.json() if r.status == 200 else None
    except aiohttp.ClientError:
        return None


@pytest.mark.timeout(90)
async def test_the_examples_start_together_and_serve_a_chat(eldric_proc, aiohttp_server,
                                                            tmp_path):
    # Backends: the worker's Ollama, and the cloud worker's providers (one fake each).
    worker_ollama = await aiohttp_server(fake_ollama.make_app())
    remote_ollama = await aiohttp_server(fake_ollama.make_app(models=["qwen2.5:7b"]))
    openai = await aiohttp_server(fake_openai.make_app())
    anthropic = await aiohttp_server(fake_anthropic.make_app())
    anthropic.app[fake_anthropic.KNOBS].api_key = env_file("cloud")["ANTHROPIC_API_KEY"]
    urls = {"openai": url_of(openai) + "/v1", "groq": url_of(openai) + "/v1",
            "anthropic": url_of(anthropic), "ollama-remote": url_of(remote_ollama)}
    backends = json.loads((EXAMPLES / "cloud.json").read_text())["backends"]
    for b in backends:
        if b["name"] in urls:
            b["url"] = urls[b["name"]]

    ports = {role: free_port() for role in ("controller", "worker", "router", "cloud", "edge")}
    base = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
    controller = base["controller"]

    def start(role: str, *flags: str, **env: str):  # type: ignore[no-untyped-def]
        return eldric_proc("--role", role, "--config", str(EXAMPLES / f"{role}.json"),
                           "--port", str(ports[role]), "--bind", "127.0.0.1",
                           "--data-dir", str(tmp_path / role), *flags,
                           env=_eldric_env(role, **env))

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "fullchain.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "privkey.pem"))
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)

    procs = {"controller": start("controller")}
    async with aiohttp.ClientSession() as s:
        await until(lambda: _json(s, controller + "/health"), timeout=20)
        procs["worker"] = start("worker", "--controller", controller,
                                "--backend-url", url_of(worker_ollama))
        procs["cloud"] = start("cloud", "--controller", controller,
                               ELDRIC_CLOUD_BACKENDS=json.dumps(backends))
        procs["router"] = start("router", "--controller", controller)
        procs["edge"] = start("edge", "--routers", base["router"],
                              "--cert", str(tmp_path / "fullchain.pem"),
                              "--key", str(tmp_path / "privkey.pem"))

        async def members():  # workers, and the routers (listed only when asked for)
            body = await _json(s, controller + "/api/v1/workers")
            routers = await _json(s, controller + "/api/v1/workers?type=router")
            if body is None or routers is None:
                return None
            return body["workers"] + routers["workers"]

        async def cluster():
            listed = await members()
            if listed is None:
                return None
            live = {w["worker_type"]: w for w in listed if w["status"] == "healthy"}
            return live if {"inference", "cloud", "router"} <= set(live) else None

        try:
            live = await until(cluster, timeout=30)
        except AssertionError:
            raise AssertionError("the cluster did not form:\n" + "\n".join(
                f"--- {role}\n{p.output()[-3000:]}" for role, p in procs.items())) from None
        assert live["router"]["router"]["strategy_source"] == "default"

        edge = f"https://127.0.0.1:{ports['edge']}"
        # the edge starts beside the others: the cluster may form before it listens
        await until(lambda: _json(s, edge + "/health", ssl=client_tls), timeout=20)
        admin = {"Authorization": f"Bearer {env_file('edge')['ELDRIC_EDGE_ADMIN_KEY']}"}
        # The example edge wants an API key: a client is created with the admin key.
        async with s.post(edge + "/api/v1/clients/register", json={"name": "examples-test"},
                          headers=admin, ssl=client_tls) as r:
            assert r.status == 201, await r.text()
            key = (await r.json())["api_key"]
        auth = {"Authorization": f"Bearer {key}"}

        async def chat(model: str, stream: bool = False):  # type: ignore[no-untyped-def]
            async with s.post(edge + "/v1/chat/completions", ssl=client_tls, headers=auth,
                              json={"model": model, "messages": MSG, "stream": stream}) as r:
                return r.status, r.headers, await r.read()

        async def served(model: str):  # type: ignore[no-untyped-def]
            got = await chat(model)
            return got if got[0] == 200 else None

        # edge (TLS, key) → router → worker → its Ollama; "gpt-4o" is router.json's alias.
        for model in ("llama3.2:3b", "gpt-4o"):
            status, headers, body = await until(lambda: served(model), timeout=15)
            assert headers["X-Eldric-Worker"] == live["inference"]["id"], headers
            assert json.loads(body)["choices"][0]["message"]["content"] == "Hello there!"
        status, headers, body = await chat("llama3.2:3b", stream=True)
        assert status == 200 and body.rstrip().endswith(b"data: [DONE]")
        # edge → router → cloud worker → the providers of cloud.json.
        for model in ("qwen2.5:7b", fake_openai.MODELS[0]):
            status, headers, body = await until(lambda: served(model), timeout=15)
            assert headers["X-Eldric-Worker"] == live["cloud"]["id"], (model, headers)
        async with s.post(edge + "/v1/chat/completions", ssl=client_tls,
                          json={"model": "llama3.2:3b", "messages": MSG}) as r:
            assert r.status == 401  # no key
        # The Batch API of edge.json's batch section, with the openai SDK, through the
        # router's batch lane (router.json's batch_slots) to the worker.
        await _a_batch_runs(edge, key, client_tls)

        for role in ("edge", "router", "cloud", "worker"):
            procs[role].p.terminate()
        codes = await asyncio.gather(*(asyncio.to_thread(procs[r].p.wait, 20)
                                       for r in ("edge", "router", "cloud", "worker")))
        assert codes == [0, 0, 0, 0]
        # They said goodbye: the controller lists them offline at once.
        assert {w["worker_type"]: w["status"] for w in await members()} == {
            "inference": "offline", "cloud": "offline", "router": "offline"}


async def _a_batch_runs(edge: str, key: str, tls: ssl.SSLContext) -> None:
    import io

    import httpx
    import openai as openai_sdk

    line = {"custom_id": "one", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "llama3.2:3b", "messages": MSG}}
    async with httpx.AsyncClient(verify=tls) as http:
        client = openai_sdk.AsyncOpenAI(base_url=edge + "/v1", api_key=key, max_retries=0,
                                        http_client=http)
        f = await client.files.create(file=("in.jsonl", io.BytesIO(
            json.dumps(line).encode() + b"\n")), purpose="batch")
        batch = await client.batches.create(input_file_id=f.id, completion_window="24h",
                                            endpoint="/v1/chat/completions")

        async def done():  # type: ignore[no-untyped-def]
            b = await client.batches.retrieve(batch.id)
            return b if b.status == "completed" else None

        batch = await until(done, timeout=15)
        assert batch.request_counts.completed == 1, batch
        out = json.loads((await client.files.content(batch.output_file_id)).text)
        assert out["custom_id"] == "one" and out["response"]["status_code"] == 200


@pytest.mark.timeout(60)
async def test_the_native_cloud_example_serves_each_of_its_kinds(eldric_proc, aiohttp_server,
                                                                 tmp_path):
    """examples/cloud-native.json (its cloud section: a copy for /etc/eldric/cloud.json;
    Gemini, Bedrock, Vertex natively; Groq; Perplexity with
    its model list in options) with examples/cloud-native.env, each backend's URL pointed
    at its fake: the file's own options are checked at start and every kind answers."""
    import openai as openai_sdk

    from eldric.backends.table import rows
    from tests.fakes import aws_sigv4, bedrock, gemini, preset, vertex

    env = env_file("cloud-native")
    gem = gemini.Knobs()
    gem.api_key = env["GEMINI_API_KEY"]
    fakes = {"gemini": await aiohttp_server(gemini.app(gem)),
             "aws": await aiohttp_server(bedrock.make_app()),
             "vertex": await aiohttp_server(vertex.app()),
             "groq": await aiohttp_server(preset.make_app(
                 rows()["groq"], key=env["GROQ_API_KEY"], model="llama-3.3-70b-versatile")),
             "perplexity": await aiohttp_server(preset.make_app(
                 rows()["perplexity"], key=env["PERPLEXITY_API_KEY"], model="sonar"))}
    config = json.loads((EXAMPLES / "cloud-native.json").read_text())
    for b in config["cloud"]["backends"]:
        b["url"] = url_of(fakes[b["name"]]) + preset.root(rows()[b["name"]]) \
            if b["name"] in ("groq", "perplexity") else url_of(fakes[b["name"]])
        if b["name"] == "vertex":  # its key file's token_uri is the fake's
            b["options"]["credentials"] = str(vertex.service_account(
                fakes["vertex"].app[gemini.KNOBS], url_of(fakes["vertex"]), tmp_path / "sa.json"))
            b["options"]["project"] = vertex.PROJECT
    path = tmp_path / "cloud-native.json"
    path.write_text(json.dumps(config))
    port = free_port()
    proc = eldric_proc("--role", "cloud", "--config", str(path), "--port", str(port),
                       "--bind", "127.0.0.1", env={
                           **_eldric_env("cloud-native"),
                           "AWS_ACCESS_KEY_ID": aws_sigv4.ACCESS_KEY,
                           "AWS_SECRET_ACCESS_KEY": aws_sigv4.SECRET_KEY})
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as s:
        async def all_healthy():  # type: ignore[no-untyped-def]
            body = await _json(s, url + "/api/v1/backends")
            if body is None:
                return None
            states = {b["name"]: b["status"] for b in body["backends"]}
            return states if set(states.values()) == {"healthy"} else None

        try:
            await until(all_healthy, timeout=30)
        except AssertionError:
            raise AssertionError(proc.output()[-3000:]) from None
    client = openai_sdk.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    for model in ("gemini-2.5-flash", "anthropic.claude-3-haiku-20240307-v1:0",
                  "vertex/gemini-2.5-flash", "llama-3.3-70b-versatile", "sonar"):
        r = await client.chat.completions.create(
            model=model, messages=MSG)
        assert r.choices[0].message.content, model
    await client.close()


@pytest.mark.timeout(60)
async def test_the_mcp_example_edge_starts_its_server_and_lists_its_tool(eldric_proc,
                                                                         tmp_path):
    """examples/edge-mcp.json (the edge's mcp_servers section) with
    examples/mcp/add_server.py (the mcp SDK's quick-start server) as its stdio child:
    the edge starts it and lists it ready with its tool; the disabled one is not started.
    Overridden: TLS (plain HTTP on a free port), the router, the Python and the script's
    path."""
    import sys

    pytest.importorskip("mcp")
    config = json.loads((EXAMPLES / "edge-mcp.json").read_text())
    demo = config["edge"]["mcp_servers"][0]
    demo["command"] = sys.executable
    demo["args"] = [str(EXAMPLES / "mcp" / "add_server.py")]
    path = tmp_path / "edge-mcp.json"
    path.write_text(json.dumps(config))
    port = free_port()
    proc = eldric_proc("--role", "edge", "--config", str(path), "--no-tls", "--http-port",
                       str(port), "--bind", "127.0.0.1", "--data-dir", str(tmp_path / "e"),
                       "--routers", f"http://127.0.0.1:{free_port()}",
                       env=_eldric_env("edge", ELDRIC_EDGE_ADMIN_KEY="sk-admin-example"))
    admin = {"Authorization": "Bearer sk-admin-example"}

    async def listed():  # type: ignore[no-untyped-def]
        async with aiohttp.ClientSession() as s:
            body = await _json(s, f"http://127.0.0.1:{port}/api/v1/plugins", headers=admin)
        servers = {m["id"]: m for m in (body or {}).get("mcp_servers", [])}
        return servers if servers.get("demo", {}).get("state") == "ready" else None

    try:
        servers = await until(listed, timeout=30)
    except AssertionError:
        raise AssertionError(proc.output()[-3000:]) from None
    assert [t if isinstance(t, str) else t["name"] for t in servers["demo"]["tools"]] == ["add"]
    assert "search" not in servers  # enabled: false: not started, not listed
