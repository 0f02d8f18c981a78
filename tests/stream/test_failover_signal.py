"""The core's retry signal: a caller may try another upstream only while nothing was sent."""

from __future__ import annotations

import json

import aiohttp
from aiohttp import web

from eldric import keys
from eldric.config import RoleConfig
from eldric.registry import Role
from eldric.stream import Target, Timeouts, UpstreamFailure, forward
from tests.conftest import free_port, run_role, url_of
from tests.fakes.openai_server import KNOBS, MODELS

ATTEMPTS: list[tuple[str, str, bool]] = []


class TryConfig(RoleConfig, kw_only=True, forbid_unknown_fields=True):
    upstreams: list[str] = []


async def try_each(request: web.Request) -> web.StreamResponse:
    """A minimal failover caller: what the router does, without strategies."""
    bus = request.app[keys.BUS]
    body = await request.read()
    last: UpstreamFailure | None = None
    for url in request.app[keys.CONFIG].upstreams:
        up = bus.upstream(url, url, role="try")
        try:
            return await forward(request, Target(up, url), request.path, body,
                                 timeouts=Timeouts(connect=1, first_byte=1, idle=1))
        except UpstreamFailure as exc:
            ATTEMPTS.append((url, exc.kind, exc.retryable))
            last = exc
            if not exc.retryable:
                break
    assert last is not None
    return last.response()


TRY = Role(name="try", port=0, config=TryConfig,
           build=lambda app, cfg: app.router.add_post("/v1/chat/completions", try_each))


async def _run(tmp_path, upstreams, body):
    ATTEMPTS.clear()
    async with run_role(TRY, tmp_path, upstreams=upstreams) as url:
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/chat/completions", json=body) as r:
                return r.status, await r.read()


CHAT = {"model": MODELS[0], "messages": [{"role": "user", "content": "hi"}]}


async def test_connection_refused_and_5xx_are_retryable(aiohttp_server, fake_openai_server,
                                                        tmp_path):
    from tests.fakes import openai_server

    broken = await aiohttp_server(openai_server.make_app())
    broken.app[KNOBS].fail_status = 500
    broken.app[KNOBS].fail_body = b'{"error": {"message": "engine dead", "type": "x"}}'
    dead = f"http://127.0.0.1:{free_port()}"
    status, body = await _run(tmp_path, [dead, url_of(broken), url_of(fake_openai_server)],
                              {**CHAT, "stream": True})
    assert status == 200 and body.endswith(b"data: [DONE]\n\n")
    assert [(k, r) for _, k, r in ATTEMPTS] == [("connect", True), ("status", True)]


async def test_4xx_is_not_retried(fake_openai_server, aiohttp_server, tmp_path):
    status, body = await _run(tmp_path, [url_of(fake_openai_server)] * 2,
                              {**CHAT, "model": "no-such-model"})
    assert status == 404
    assert json.loads(body)["error"]["message"].startswith("The model `no-such-model`")
    assert ATTEMPTS == []  # relayed as the upstream's answer, not a failure


async def test_all_failed_gives_last_failure(tmp_path):
    dead1, dead2 = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
    status, body = await _run(tmp_path, [dead1, dead2], CHAT)
    assert status == 503
    assert json.loads(body)["error"]["code"] == "upstream_unavailable"
    assert len(ATTEMPTS) == 2
