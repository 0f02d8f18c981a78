"""A pull or install whose `url` is not an http(s) URL eldric can parse is refused with a
400 before any stream, on every backend kind (it was a 500 with a traceback: urlsplit
raises on a broken IPv6 host)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import run_eldric, url_of

BAD = ["http://[::1", "http://[::1/a.gguf", "ftp://host/a.gguf", "not a url", "http://h:99999/a.gguf"]


@pytest.mark.parametrize("route,body", [
    ("pull", {"model": "tiny"}),
    ("install", {"name": "tiny"}),
    ("install", {"name": "tiny", "format": "safetensors"}),
])
async def test_bad_url_is_a_400_before_any_stream(fake_openai_server, tmp_path, route, body):
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="llamacpp",
                          backend_url=url_of(fake_openai_server),
                          models_dir=str(tmp_path / "models")) as urls, \
            aiohttp.ClientSession() as s:
        for url in BAD:
            async with s.post(f"{urls['worker']}/api/v1/models/{route}",
                              json={**body, "url": url}) as r:
                assert r.status == 400, (url, r.status, await r.text())
                err = (await r.json())["error"]
                assert (err["code"], err["param"]) == ("invalid_request", "url"), err
        assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
