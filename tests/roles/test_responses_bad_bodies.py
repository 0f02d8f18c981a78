"""Hostile /v1/responses bodies through every hop (worker, router, edge): each a 400 in
OpenAI's shape naming the field, never a 500 at the worker or a 503 after retries in
front of it; with previous_response_id too (the state's first hop must not drop a bad
input and answer 200)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.roles.test_responses_hops import HOPS, MODEL, hops, sdk  # noqa: F401 - fixture

# past any recursion limit msgspec meets (mypy, run in the suite, raises it to 16384)
DEEP = "[" * 100_000 + "]" * 100_000

BAD = [
    ('{"model":"%s","input":[{"role":[]}]}', "input[0].role"),
    ('{"model":"%s","input":"hi","tools":[{"type":{}}]}', "tools[0].type"),
    ('{"model":"%s","input":"hi","tool_choice":{"type":[]}}', "tool_choice"),
    ('{"model":"%s","input":' + DEEP + "}", None),
]


async def _post(url: str, body: bytes) -> tuple[int, dict]:
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-a"}) as s:
        async with s.post(url + "/v1/responses", data=body,
                          headers={"Content-Type": "application/json"}) as resp:
            return resp.status, await resp.json()


def _refused(status: int, body: dict, param: str | None) -> None:
    assert status == 400, body
    assert body["error"]["type"] == "invalid_request_error"
    if param is not None:
        assert body["error"]["param"] == param


@pytest.mark.parametrize("hop", HOPS)
@pytest.mark.parametrize("template, param", BAD)
async def test_a_hostile_body_is_a_400_on_every_hop(hops, hop, template, param):
    status, body = await _post(hops[hop], (template % MODEL).encode())
    _refused(status, body, param)


@pytest.mark.parametrize("hop", HOPS)
@pytest.mark.parametrize("bad, param", [("5", "input"), ('{"a":1}', "input"),
                                        ('[5,"junk"]', "input[0]")])
async def test_a_bad_input_with_a_previous_id_is_a_400(hops, hop, bad, param):
    r = await sdk(hops[hop]).responses.create(model=MODEL, input="hi")
    status, body = await _post(hops[hop], (
        '{"model":"%s","input":%s,"previous_response_id":"%s"}' % (MODEL, bad, r.id)).encode())
    _refused(status, body, param)
