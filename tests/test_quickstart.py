"""The quick start, run exactly as README.md shows it, answered by the openai SDK."""

from __future__ import annotations

import re
from pathlib import Path

import openai

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_shows_the_commands():
    text = README.read_text()
    assert "eldric --role all" in text
    assert "bash .ci/run" in text


def test_role_all_serves_the_mock_on_loopback(eldric_proc, tmp_path):
    proc = eldric_proc("--role", "all", env={"XDG_DATA_HOME": str(tmp_path)})
    proc.wait_http("http://127.0.0.1:8080/health")
    # As README says: the edge on 8080 (no key on loopback), then router, then worker.
    client = openai.OpenAI(base_url="http://127.0.0.1:8080/v1", api_key="unused")
    assert [m.id for m in client.models.list()] == ["eldric-mock"]
    reply = client.chat.completions.create(model="eldric-mock",
                                           messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content.startswith("The quick brown fox")
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="eldric-mock", messages=[{"role": "user", "content": "hi"}], stream=True)
        if c.choices)
    assert text == reply.choices[0].message.content
    raw = client.chat.completions.with_raw_response.create(
        model="eldric-mock", messages=[{"role": "user", "content": "hi"}])
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
