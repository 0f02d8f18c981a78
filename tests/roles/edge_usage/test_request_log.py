"""The request log on its own: rows written at the flush, bodies only when asked and
then through the redaction first (withheld when it fails), retention by days, bounded
while the file cannot be written."""

from __future__ import annotations

import json
import os
import shutil
import time

import aiohttp

from eldric.roles.edge.usage.record import Record, Tokens
from eldric.roles.edge.usage.requestlog import RequestLog
from tests.conftest import until
from tests.fakes import scripted
from tests.roles.plugin_kit import ADMIN, EXAMPLES, MODEL, chat, edge, enable, sdk, streamed


def rec(ts: float, client: str = "app", model: str = "m") -> Record:
    return Record(ts=ts, client=client, model=model, backend="w1", path="/v1/chat/completions",
                  status=200, tokens=Tokens(3, 4, 1, True), cost=None, latency_ms=5.5,
                  ttft_ms=1.5, stream=True)


async def rows(log: RequestLog, **kw) -> list[dict]:
    return await log.rows(since=0.0, until=float("inf"), client=kw.get("client"),
                          model=kw.get("model"), limit=kw.get("limit", 100))


async def test_rows_without_bodies_unless_asked(tmp_path):
    log = RequestLog(str(tmp_path / "r.db"), days=30, bound=10, bodies=False)
    await log.open()
    now = time.time()
    log.add(rec(now), b'{"messages": "secret"}', b'{"reply": 1}')
    log.add(rec(now + 1, client="ops"))
    await log.flush()
    got = await rows(log)
    assert [r["client"] for r in got] == ["ops", "app"]  # newest first
    assert got[1] == {"ts": now, "client": "app", "model": "m", "backend": "w1",
                      "path": "/v1/chat/completions", "status": 200, "prompt_tokens": 3,
                      "completion_tokens": 4, "cached_tokens": 1, "estimated": True,
                      "cost": None, "latency_ms": 5.5, "ttft_ms": 1.5, "stream": True,
                      "abandoned": False, "request_body": None, "reply_body": None,
                      "cache": None}
    assert [r["client"] for r in await rows(log, client="app")] == ["app"]
    assert len(await rows(log, limit=1)) == 1
    await log.close()


async def test_bodies_through_the_redaction_and_withheld_when_it_fails(tmp_path):
    seen = []

    async def redact(hook, model, client, body):
        seen.append((hook, model, client))
        if b"refuse" in body:
            raise RuntimeError("a closed filter failed")
        return body.replace(b"bob@example.com", b"[email]")

    log = RequestLog(str(tmp_path / "r.db"), days=30, bound=10, bodies=True, redact=redact)
    await log.open()
    now = time.time()
    log.add(rec(now), b'{"q": "mail bob@example.com"}', b'{"a": "bob@example.com"}')
    log.add(rec(now + 1), b'{"q": "refuse"}', None)
    await log.flush()
    newer, older = await rows(log)
    assert older["request_body"] == '{"q": "mail [email]"}'
    assert older["reply_body"] == '{"a": "[email]"}'
    assert newer["request_body"] is None and newer["reply_body"] is None
    assert ("inlet", "m", "app") in seen and ("outlet", "m", "app") in seen
    await log.close()


async def test_rows_past_retention_are_deleted(tmp_path):
    log = RequestLog(str(tmp_path / "r.db"), days=2, bound=10, bodies=False)
    await log.open()
    now = time.time()
    log.add(rec(now - 3 * 86_400, client="old"))
    log.add(rec(now - 1 * 86_400, client="recent"))
    await log.flush()  # written, then this run's first prune (hourly after it)
    assert [r["client"] for r in await rows(log)] == ["recent"]
    await log.close()


async def test_unwritable_file_keeps_rows_up_to_the_bound(tmp_path):
    path = str(tmp_path / "r.db")
    log = RequestLog(path, days=30, bound=3, bodies=False)
    await log.open()
    os.rename(path, path + ".away")
    os.mkdir(path)
    now = time.time()
    for i in range(5):
        log.add(rec(now + i, client=f"c{i}"))
    assert log.dropped == 2  # past the bound at once
    await log.flush()  # refused: kept
    assert len(log.pending) == 3
    os.rmdir(path)
    os.rename(path + ".away", path)
    await log.flush()
    assert [r["client"] for r in await rows(log)] == ["c2", "c1", "c0"]
    assert log.dropped == 2
    await log.close()


async def test_bodies_waiting_for_an_unwritable_file_are_bounded_in_bytes(tmp_path):
    """The rows' bound alone let each waiting row hold bodies up to --max-body-size:
    past the bytes' bound a row waits without them (its numbers are kept), and what a
    refused flush gives back counts again."""
    path = str(tmp_path / "r.db")
    log = RequestLog(path, days=30, bound=100, bodies=True, body_bytes=10_000)
    await log.open()
    os.rename(path, path + ".away")
    os.mkdir(path)
    now, big = time.time(), b"x" * 3000
    for i in range(6):
        log.add(rec(now + i, client=f"c{i}"), big, b"{}")
    held = sum(len(r.request_body or b"") + len(r.reply_body or b"") for r in log.pending)
    assert len(log.pending) == 6 and held <= 10_000 and log.bodies_dropped == 3
    await log.flush()  # refused: kept, and still counted against the bound
    log.add(rec(now + 7, client="c7"), big, b"{}")
    assert log.pending[-1].request_body is None and log.bodies_dropped == 4
    os.rmdir(path)
    os.rename(path + ".away", path)
    await log.flush()
    got = {r["client"]: r for r in await rows(log)}
    assert len(got) == 7 and got["c0"]["request_body"] == big.decode()
    assert got["c5"]["request_body"] is None and got["c5"]["prompt_tokens"] == 3
    log.add(rec(now + 8, client="c8"), big, b"{}")  # written: room again
    assert log.pending[-1].request_body == big
    await log.close()


async def test_logged_replies_whole_and_streamed_masked_by_the_pii_filter(tmp_path,
                                                                         aiohttp_server):
    """The shipped pii-redact filter on a real edge: what the log keeps of the request
    and of the reply, whole or streamed, is masked as the traffic is."""
    secret = "mail bob.smith@example.com or call 555 123 4567"
    script = await scripted.serve(aiohttp_server, [MODEL])
    script.on(text=secret)
    plugins = tmp_path / "plugins"
    shutil.copytree(EXAMPLES / "pii-redact", plugins / "pii-redact")
    async with edge(tmp_path, script, plugins, request_log="sqlite",
                    request_log_bodies=True) as url, aiohttp.ClientSession() as s:
        await enable(s, url, "pii-redact")
        client = sdk(url)
        await chat(client, "I am bob.smith@example.com")
        assert (await streamed(client, "hi")).strip() == "mail [email] or call [phone]"
        await client.close()

        async def logged():  # a stream is counted a moment after its last byte
            async with s.get(url + "/api/v1/usage/requests", headers=ADMIN) as r:
                assert r.status == 200
                text = await r.text()
            return len(json.loads(text)["requests"]) == 2 and text
        text = await until(logged)
        assert "bob.smith" not in text and "4567" not in text
        stream_row, whole_row = json.loads(text)["requests"]
        assert json.loads(whole_row["request_body"])["messages"][0]["content"] == "I am [email]"
        for row in (whole_row, stream_row):
            content = json.loads(row["reply_body"])["choices"][0]["message"]["content"]
            assert content.strip() == "mail [email] or call [phone]"
