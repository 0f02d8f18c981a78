"""A filter sees Chat Completions only: a request in another API's shape for a model a
fail-closed filter applies to is refused (403 plugin_path_unfiltered naming the plugin
and the path), never relayed unfiltered; one a fail-open filter applies to goes on,
counted as that filter's skip; one no filter applies to goes on as before."""

from __future__ import annotations

import types

import aiohttp
import pytest
from aiohttp import web

from tests.roles.plugin_kit import ADMIN, edge, enable, status, write_plugin

PASS = """
from eldric import plugin

@plugin.inlet
def inlet(body, user):
    return body

plugin.run()
"""

BODIES = {
    "/v1/completions": {"model": "m", "prompt": "my card is 4111 1111 1111 1111"},
    "/v1/embeddings": {"model": "m", "input": "my card is 4111 1111 1111 1111"},
    "/v1/messages": {"model": "m", "max_tokens": 8,
                     "messages": [{"role": "user", "content": "my card is 4111"}]},
    "/v1/responses": {"model": "m", "input": "my card is 4111 1111 1111 1111"},
    "/api/chat": {"model": "m", "messages": [{"role": "user", "content": "my card is 4111"}]},
    "/api/generate": {"model": "m", "prompt": "my card is 4111 1111 1111 1111"},
    # not quite the chat path: relayed as it came (a backend may take it as chat)
    "/v1/chat/completions/": {"model": "m",
                              "messages": [{"role": "user", "content": "my card is 4111"}]},
}


async def _backend(aiohttp_server):  # type: ignore[no-untyped-def]
    """Any path answers 200 with a JSON object, and is recorded."""
    seen: list[str] = []

    async def any_path(request: web.Request) -> web.Response:
        if request.path != "/health":
            seen.append(request.path)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_path)
    server = await aiohttp_server(app)
    return types.SimpleNamespace(url=str(server.make_url("")).rstrip("/"), seen=seen)


@pytest.mark.parametrize("path", list(BODIES))
async def test_a_fail_closed_filter_is_not_bypassed_by_another_api(tmp_path, aiohttp_server,
                                                                    path):
    backend = await _backend(aiohttp_server)
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "guard", PASS, applies_to=["m"], fail_mode="closed")
    async with edge(tmp_path, backend, plugins) as url, aiohttp.ClientSession() as s:
        await enable(s, url, "guard")
        async with s.post(url + path, json=BODIES[path]) as r:
            assert r.status == 403, await r.text()
            body = await r.json()
        text = str(body)
        assert "plugin_path_unfiltered" in text and "guard" in text and path in text
        assert backend.seen == []  # never reached the cluster
        # a model the filter does not apply to goes on as before
        async with s.post(url + path, json={**BODIES[path], "model": "other"}) as r:
            assert r.status == 200, await r.text()
        assert backend.seen == [path]


async def test_a_fail_open_filter_lets_another_api_pass_and_counts_the_skip(
        tmp_path, aiohttp_server):
    backend = await _backend(aiohttp_server)
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "loose", PASS, fail_mode="open")
    async with edge(tmp_path, backend, plugins) as url, aiohttp.ClientSession() as s:
        await enable(s, url, "loose")
        async with s.post(url + "/v1/messages", json=BODIES["/v1/messages"]) as r:
            assert r.status == 200, await r.text()
        assert backend.seen == ["/v1/messages"]
        assert (await status(s, url, "loose"))["skipped"] == 1
        async with s.get(url + "/api/v1/plugins", headers=ADMIN) as r:
            assert r.status == 200
