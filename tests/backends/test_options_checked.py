"""What an operator gets wrong about a backend is said when it is configured: the cloud
role refuses to start (exit 2, the message naming the backend and the option), the
worker too, the cloud's admin API answers 400; never a backend that starts "ready" and
answers 500 on every request, nor an option ignored unsaid."""

from __future__ import annotations

import json
import sys

import aiohttp
import pytest

from eldric.backends import options as backend_options
from eldric.backends.table import adapters
from tests.backends.gemini_harness import cloud
from tests.conftest import url_of
from tests.fakes import gemini as fake_gemini

TEMPLATE = {"path": "/predictions/{model}", "request": {"data": "{{prompt}}"},
            "response": "0", "models": ["llm"]}


def _refusal(kind: str, options: dict, key: str | None = "k") -> str:
    with pytest.raises(ValueError) as err:
        backend_options.check(kind, adapters().get(kind), options, key)
    return str(err.value)


def test_an_unknown_option_is_refused_naming_the_closest():
    assert "options.safety_setings" in _refusal("gemini", {"safety_setings": []})
    assert "did you mean 'safety_settings'" in _refusal("gemini", {"safety_setings": []})
    # an OpenAI-compatible kind (no adapter) reads the common options only
    assert "did you mean 'models'" in _refusal("groq", {"modles": ["sonar"]})
    # the options each kind documents are taken
    backend_options.check("gemini", adapters()["gemini"],
                          {"safety_settings": [], "generation_config": {}, "models": ["m"],
                           "vision": True, "xml_tools": ["*"]}, "k")
    backend_options.check("perplexity", None, {"models": ["sonar", "sonar-pro"]})
    backend_options.check("template", adapters()["template"], TEMPLATE, None)
    assert "options.models" in _refusal("perplexity", {"models": "sonar"})


def test_required_options_and_missing_extras_are_refused(monkeypatch):
    assert "options.project is required" in _refusal("vertex", {"models": ["gemini-2.5-flash"]})
    assert "option path" in _refusal("template", {k: v for k, v in TEMPLATE.items()
                                                  if k != "path"}, None)
    assert "option request" in _refusal("template", {k: v for k, v in TEMPLATE.items()
                                                     if k != "request"}, None)
    # botocore not installed: said unless the backend sends a Bedrock API key instead
    from eldric.backends import auth_aws
    monkeypatch.setattr(auth_aws, "available", lambda: False)
    assert "pip install 'eldric[aws]'" in _refusal("bedrock", {"region": "us-east-1"}, None)
    assert "pip install 'eldric[aws]'" in _refusal("sagemaker", {"models": ["ep"]}, None)
    backend_options.check("bedrock", adapters()["bedrock"], {"models": ["m"]}, "ABSK-key")
    # google-auth not installed, a service account given
    monkeypatch.setitem(sys.modules, "google.oauth2.service_account", None)
    assert "pip install 'eldric[vertex]'" in _refusal(
        "vertex", {"project": "p", "credentials": "/etc/eldric/sa.json"})
    backend_options.check("vertex", adapters()["vertex"], {"project": "p"}, "ya29.token")


@pytest.mark.parametrize("entry, says", [
    ({"name": "g", "type": "gemini", "url": "http://127.0.0.1:9", "api_key": "k",
      "options": {"safety_setings": []}}, "did you mean 'safety_settings'"),
    ({"name": "v", "type": "vertex", "url": "http://127.0.0.1:9", "api_key": "tok",
      "options": {"models": ["gemini-2.5-flash"]}}, "options.project is required"),
    ({"name": "ts", "type": "template", "url": "http://127.0.0.1:9",
      "options": {"request": {"data": "{{prompt}}"}, "response": "0"}}, "option path"),
])
def test_the_cloud_role_does_not_start_with_a_backend_that_cannot_work(
        eldric_proc, tmp_path, entry, says):
    path = tmp_path / "cloud.json"
    path.write_text(json.dumps({"cloud": {"backends": [entry]}}))
    proc = eldric_proc("--role", "cloud", "--config", str(path), "--port", "0",
                       "--bind", "127.0.0.1")
    assert proc.p.wait(20) == 2
    out = proc.output()
    assert f"backend {entry['name']!r}" in out and says in out, out


@pytest.mark.parametrize("args, says", [
    (["--backend", "vertex", "--backend-api-key", "tok", "--backend-options",
      '{"models": ["gemini-2.5-flash"]}'], "options.project is required"),
    (["--backend", "template", "--backend-options", json.dumps(TEMPLATE)],
     "give --backend-url"),
    (["--backend", "gemini", "--backend-options", '{"safety_setings": []}'],
     "did you mean 'safety_settings'"),
    (["--backend", "nim", "--backend-options", '{"models": ["m"]}'], "--backend nim reads none"),
])
def test_the_worker_does_not_start_with_a_backend_that_cannot_work(eldric_proc, args, says):
    proc = eldric_proc("--role", "worker", "--port", "0", "--bind", "127.0.0.1", *args)
    assert proc.p.wait(20) == 2
    assert says in proc.output(), proc.output()


async def test_the_admin_api_answers_400_for_such_a_backend(tmp_path, aiohttp_server):
    gemini = await aiohttp_server(fake_gemini.app())
    ok = {"name": "g", "type": "gemini", "url": url_of(gemini), "api_key": fake_gemini.API_KEY}
    async with cloud(tmp_path, [ok]) as url, aiohttp.ClientSession() as s:
        async with s.post(url + "/api/v1/backends", json={
                "name": "v", "type": "vertex", "url": url_of(gemini), "api_key": "t",
                "options": {"models": ["gemini-2.5-flash"]}}) as r:
            assert r.status == 400
            assert "options.project" in (await r.json())["error"]["message"]


async def test_a_gemini_key_refused_is_auth_failed_not_a_healthy_backend(tmp_path,
                                                                         aiohttp_server):
    """Gemini answers a wrong key with 400 INVALID_ARGUMENT (reason API_KEY_INVALID): the
    probe must read that as a refused key, not as a healthy backend with no models."""
    gemini = await aiohttp_server(fake_gemini.app())
    entry = {"name": "g", "type": "gemini", "url": url_of(gemini), "api_key": "AIzaWrong"}
    async with cloud(tmp_path, [entry]) as url, aiohttp.ClientSession() as s:
        async with s.get(url + "/api/v1/backends") as r:
            (b,) = (await r.json())["backends"]
        assert b["auth_failed"] is True and b["status"] == "unhealthy", b


async def test_a_worker_whose_backend_refuses_its_key_stays_unhealthy(aiohttp_server, tmp_path):
    """The probe finds the key refused (logged naming --backend-api-key); a client's
    request answered 401 by the backend must not mark it healthy again (routers would
    send every request there)."""
    from eldric.backends.table import rows
    from tests.conftest import run_eldric
    from tests.fakes import preset

    server = await aiohttp_server(preset.make_app(rows()["tabbyapi"], key="right", model="m"))
    async with run_eldric("worker", tmp_path, backend="tabbyapi", port=0, bind="127.0.0.1",
                          backend_url=url_of(server) + "/v1",
                          backend_api_key="wrong") as urls, aiohttp.ClientSession() as s:
        async with s.get(urls["worker"] + "/health") as r:
            health = await r.json()
        assert r.status == 503 and health["backend"]["healthy"] is False
        async with s.post(urls["worker"] + "/v1/chat/completions", json={
                "model": "m", "messages": [{"role": "user", "content": "hi"}]}) as r:
            # the worker's key, not the client's: never passed on as the client's 401
            assert r.status == 502 and (await r.json())["error"]["code"] == "backend_auth_failed"
        async with s.get(urls["worker"] + "/health") as r:
            assert r.status == 503 and (await r.json())["backend"]["healthy"] is False


@pytest.mark.parametrize("backends, says", [
    ("lcm", "type template"), ("vl-jepa", "type template"),
    ("gemni::k", "did you mean 'gemini'"),
])
def test_the_cloud_says_what_a_name_without_url_is(eldric_proc, backends, says):
    """`--backends lcm` is the kind the table lists as having no server API (pointed at
    the template, as the worker's --backend lcm is), a misspelt name gets the closest."""
    proc = eldric_proc("--role", "cloud", "--backends", backends, "--port", "0",
                       "--bind", "127.0.0.1")
    assert proc.p.wait(20) == 2
    assert says in proc.output() and "Traceback" not in proc.output(), proc.output()


def test_a_backend_listing_no_models_is_said_at_start(eldric_proc, tmp_path):
    """Perplexity lists no models: `--backends perplexity:URL:KEY` without the config
    file's options.models serves none by name, and the log says what to do."""
    import socket
    import subprocess
    import time

    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    fake = subprocess.Popen([sys.executable, "-c", (
        "from aiohttp import web; from eldric.backends.table import rows; "
        "from tests.fakes.preset import make_app; "
        f"web.run_app(make_app(rows()['perplexity'], key='k', model='sonar'), "
        f"host='127.0.0.1', port={free}, print=None)")])
    try:
        deadline = time.monotonic() + 15  # the fake listening: not a fixed wait
        while True:
            try:
                socket.create_connection(("127.0.0.1", free), timeout=0.2).close()
                break
            except OSError:
                assert fake.poll() is None and time.monotonic() < deadline, "fake not up"
                time.sleep(0.05)
        proc = eldric_proc("--role", "cloud", "--backends",
                           f"perplexity:http://127.0.0.1:{free}:k", "--port", "0",
                           "--bind", "127.0.0.1")
        deadline = time.monotonic() + 20
        while "backend_lists_no_models" not in proc.output() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "backend_lists_no_models" in proc.output() and "options.models" in proc.output()
    finally:
        fake.terminate()
        fake.wait()
