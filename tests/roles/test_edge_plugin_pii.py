"""The shipped PII-redaction filter (examples/plugins/pii-redact): what the model is
sent is masked (inlet), and so is what it answers, whole (outlet) or streamed token by
token (stream), also when an address or number comes split over several chunks."""

from __future__ import annotations

import shutil

import aiohttp
import openai
import pytest

from eldric.roles.edge.plugins.process import PluginProcess
from tests.fakes import scripted
from tests.roles.plugin_kit import (ADMIN, EXAMPLES, MODEL, chat, edge, enable, sdk, streamed)

SECRET = "mail bob.smith@example.com or call 555 123 4567, card 4111 1111 1111 1111 ok"
MASKED = "mail [email] or call [phone], card [card] ok"


async def test_pii_masked_in_and_out_whole_and_streamed(tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, [MODEL])
    script.on(text=SECRET)
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLES / "pii-redact", plugins / "pii-redact")
    async with edge(tmp_path, script, plugins) as url, aiohttp.ClientSession() as s:
        await enable(s, url, "pii-redact")
        client = sdk(url)
        reply = await chat(client, "I am bob.smith@example.com, SSN 078-05-1120")
        assert script.calls[-1].last_user == "I am [email], SSN [ssn]"
        assert reply.choices[0].message.content == MASKED
        assert (await streamed(client, "hi")).strip() == MASKED
        # valves: only e-mail, and refuse instead of masking
        async with s.put(url + "/api/v1/plugins/pii-redact/valves", headers=ADMIN,
                         json={"kinds": ["email"], "refuse": True}) as r:
            assert r.status == 200, await r.text()
        with pytest.raises(openai.BadRequestError) as e:
            await chat(client, "write to bob@example.com")
        assert e.value.body["code"] == "plugin_refused" and "email" in e.value.body["message"]
        reply = await chat(client, "call 555 123 4567")
        assert reply.choices[0].message.content == \
            "mail [email] or call 555 123 4567, card 4111 1111 1111 1111 ok"
        async with s.put(url + "/api/v1/plugins/pii-redact/valves", headers=ADMIN,
                         json={"kinds": ["fingerprints"]}) as r:
            assert r.status == 400 and (await r.json())["error"]["param"] == "kinds.0"
        await client.close()


async def test_stream_hook_masks_what_comes_split_over_chunks():
    """The child itself, driven as the edge drives it: one chunk per piece."""
    proc = PluginProcess("pii-redact", EXAMPLES / "pii-redact", init=lambda: {
        "valves": {"kinds": ["email", "phone", "card", "ssn"], "refuse": False,
                   "mask": "[{kind}]"}})
    await proc.start()
    try:
        pieces = ["Reach ", "bob", ".smith@exam", "ple.com", " or +1 555", " 123", " 45",
                  "67 today", "."]
        out = []
        for i, piece in enumerate(pieces + [None]):
            choice = {"index": 0, "delta": {"content": piece} if piece is not None else {},
                      "finish_reason": None if piece is not None else "stop"}
            got = await proc.call("stream", {"event": {"id": "c1", "choices": [choice]},
                                             "user": {"name": "t"}})
            out.append(got["event"]["choices"][0]["delta"].get("content") or "")
        assert "".join(out) == "Reach [email] or [phone] today."
        assert not any("@" in o or "555" in o for o in out)
    finally:
        await proc.stop()
