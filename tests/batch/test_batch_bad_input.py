"""Bad uploads and bad batch requests: 400 (413 for size) in OpenAI's error shape with
eldric's own codes, the line named; nothing stored."""

from __future__ import annotations

import aiohttp
import pytest

from tests.batch.helpers import chain, jsonl, line
from tests.fakes import openai_server

AUTH = {"Authorization": "Bearer k1"}

BAD = [
    (b"{not json", "invalid_json_line"),
    (b'{"custom_id": "a", "method": "POST"}', "invalid_request_line"),
    (b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": 3}',
     "invalid_request_line"),
    (jsonl([line("a", method="GET")]), "invalid_method"),
    (jsonl([line("a", url="/v1/images/generations")]), "invalid_url"),
    (jsonl([line("a"), line("a")]), "duplicate_custom_id"),
    # a streamed reply cannot be a line's response body (OpenAI refuses it too)
    (jsonl([line("a"), {**line("b"), "body": {**line("b")["body"], "stream": True}}]),
     "stream_not_supported"),
    (b"\n\n", "empty_file"),
    (jsonl([line(str(i)) for i in range(4)]), "too_many_requests_in_file"),
]


async def _upload(s, url, data, purpose="batch", status=400):  # type: ignore[no-untyped-def]
    form = aiohttp.FormData()
    form.add_field("purpose", purpose)
    form.add_field("file", data, filename="in.jsonl", content_type="application/jsonl")
    async with s.post(url + "/v1/files", data=form) as r:
        body = await r.json()
        assert r.status == status, body
        return body


async def test_bad_files_are_refused_with_their_code(aiohttp_server, tmp_path):
    worker = await aiohttp_server(openai_server.make_app())
    async with chain(tmp_path, worker, batch_max_lines=3, batch_max_file_bytes=4096) as url:
        async with aiohttp.ClientSession(headers=AUTH) as s:
            for data, code in BAD:
                err = (await _upload(s, url, data))["error"]
                assert err["code"] == code, (data, err)
                assert err["type"] == "invalid_request_error" and err["param"] == "file"
            err = (await _upload(s, url, jsonl([line("a")]), purpose="fine-tune"))["error"]
            assert err["code"] == "invalid_purpose"
            err = (await _upload(s, url, b"x" * 5000, status=413))["error"]
            assert err["code"] == "file_too_large"
            async with s.post(url + "/v1/files", json={"purpose": "batch"}) as r:
                assert r.status == 400
                assert (await r.json())["error"]["code"] == "invalid_content_type"
            async with s.get(url + "/v1/files") as r:
                assert (await r.json())["data"] == []  # nothing was stored
            ok = await _upload(s, url, jsonl([line("a")]), status=200)
            for req, code in (
                    ({"input_file_id": ok["id"], "endpoint": "/v1/embeddings",
                      "completion_window": "24h"}, "mismatched_endpoint"),
                    ({"input_file_id": ok["id"], "endpoint": "/v1/moderations",
                      "completion_window": "24h"}, "invalid_endpoint"),
                    ({"input_file_id": ok["id"], "endpoint": "/v1/chat/completions",
                      "completion_window": "1h"}, "invalid_completion_window"),
                    ({"endpoint": "/v1/chat/completions"}, "invalid_request")):
                async with s.post(url + "/v1/batches", json=req) as r:
                    assert r.status == 400
                    assert (await r.json())["error"]["code"] == code
            async with s.post(url + "/v1/batches", data=b"{") as r:
                assert r.status == 400
            async with s.get(url + "/v1/batches?limit=0") as r:
                assert r.status == 400
                assert (await r.json())["error"]["code"] == "invalid_limit"
            async with s.get(url + "/v1/batches/batch_nope") as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "batch_not_found"


@pytest.mark.parametrize("flag", [False])
async def test_batch_off_leaves_the_paths_to_the_routers(aiohttp_server, tmp_path, flag):
    worker = await aiohttp_server(openai_server.make_app())
    async with chain(tmp_path, worker, batch=flag) as url:
        async with aiohttp.ClientSession(headers=AUTH) as s:
            async with s.get(url + "/v1/batches") as r:
                assert r.status == 404  # the router's answer: no such path there
