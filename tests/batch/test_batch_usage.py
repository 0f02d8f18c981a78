"""Batch lines are counted to the batch's owner: its tokens on the edge's /metrics and in
its usage, as an interactive request's would be."""

from __future__ import annotations

import json
import re

import aiohttp

from tests.batch.helpers import chain, finished, jsonl, line, sdk
from tests.fakes import openai_server


async def _tokens(url: str) -> dict[tuple[str, str], float]:
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        text = await r.text()
    out = {}
    for m in re.finditer(r'^eldric_edge_tokens_total\{(.*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        out[(labels["client"], labels["kind"])] = float(m.group(2))
    return out


async def test_batch_lines_are_counted_to_the_client(aiohttp_server, tmp_path):
    worker = await aiohttp_server(openai_server.make_app())
    async with chain(tmp_path, worker) as url:
        client = sdk(url)
        f = await client.files.create(file=("in.jsonl", jsonl([line(f"u{i}") for i in range(3)])),
                                      purpose="batch")
        b = await client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                        completion_window="24h")
        b = await finished(client, b.id)
        assert b.status == "completed" and b.request_counts.completed == 3
        counted = await _tokens(url)
        # the three lines' tokens, to one client (not anonymous): the fake states usage
        prompt = {c: n for (c, kind), n in counted.items() if kind == "prompt"}
        assert len(prompt) == 1 and "anonymous" not in prompt, counted
        assert next(iter(prompt.values())) > 0
        completion = [n for (c, kind), n in counted.items() if kind == "completion"]
        assert completion and completion[0] > 0


async def test_batch_lines_are_charged_to_the_clients_budget(tmp_path):
    """A client with 1000 tokens a day runs 3 batch lines (the mock uses 10 each): an
    interactive request after it sees the 30 gone (and its own 13 reserved)."""
    from tests.roles.edge_usage.test_budgets_e2e import ASK, REMAINING, RESERVED, USED, ask, \
        cluster, register

    async with cluster(tmp_path) as (edge,):
        async with aiohttp.ClientSession() as s:
            key = await register(s, edge, "batcher", max_tokens_per_day=1000)
            client = sdk(edge, key)
            rows = [{"custom_id": f"b{i}", "method": "POST", "url": "/v1/chat/completions",
                     "body": ASK} for i in range(3)]
            f = await client.files.create(file=("in.jsonl", jsonl(rows)), purpose="batch")
            b = await client.batches.create(input_file_id=f.id,
                                            endpoint="/v1/chat/completions",
                                            completion_window="24h")
            b = await finished(client, b.id)
            assert b.request_counts.completed == 3
            status, headers, _ = await ask(s, edge, key)
            assert status == 200
            assert headers[REMAINING] == f"tokens_per_day={1000 - 3 * USED - RESERVED}"


async def test_a_keys_allowed_models_hold_for_its_batch_lines(tmp_path):
    """A key allowed only eldric-* models cannot run another model through a batch: that
    line is its error entry (never sent), the allowed one runs."""
    from tests.roles.edge_usage.test_budgets_e2e import ASK, cluster, register

    async with cluster(tmp_path) as (edge,):
        async with aiohttp.ClientSession() as s:
            key = await register(s, edge, "narrow", allowed_models=["eldric-*"])
            client = sdk(edge, key)
            rows = [{"custom_id": "ok", "method": "POST", "url": "/v1/chat/completions",
                     "body": ASK},
                    {"custom_id": "no", "method": "POST", "url": "/v1/chat/completions",
                     "body": {**ASK, "model": "secret-model"}}]
            f = await client.files.create(file=("in.jsonl", jsonl(rows)), purpose="batch")
            b = await client.batches.create(input_file_id=f.id,
                                            endpoint="/v1/chat/completions",
                                            completion_window="24h")
            b = await finished(client, b.id)
            assert (b.request_counts.completed, b.request_counts.failed) == (1, 1)
            errors = [json.loads(x) for x in
                      (await client.files.content(b.error_file_id)).text.splitlines()]
            assert [(e["custom_id"], e["response"], e["error"]["code"]) for e in errors] == \
                [("no", None, "model_not_allowed")]
