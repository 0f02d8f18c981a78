"""Every client API the edge relays is counted from its own reply shape: Anthropic's
Messages, OpenAI's Responses, Ollama's /api/chat and /api/generate (NDJSON), embeddings;
a backend that states no usage is estimated; cached tokens and prices carried through."""

from __future__ import annotations

import json

import aiohttp

from tests.conftest import run_eldric, until, url_of
from tests.fakes import openai_server
from tests.roles.edge_usage.helpers import cluster, metrics, records

MODEL = "eldric-mock"
USER = [{"role": "user", "content": "one two three"}]


async def _post(s, url, body):
    async with s.post(url, json=body) as r:
        assert r.status == 200, await r.text()
        return r.headers.get("Content-Type", ""), await r.read()


def _sse(raw: bytes) -> list[dict]:
    return [json.loads(line.split("data: ", 1)[1]) for line in raw.decode().split("\n\n")
            if "data: {" in line]


async def test_anthropic_responses_ollama_counted_as_they_state(tmp_path):
    async with cluster(tmp_path) as (edge, _):
        stated = []  # (path, stream, prompt, completion) as each reply states it
        async with aiohttp.ClientSession() as s:
            _, raw = await _post(s, edge + "/v1/messages",
                                 {"model": MODEL, "max_tokens": 10, "messages": USER})
            u = json.loads(raw)["usage"]
            stated.append(("/v1/messages", False, u["input_tokens"], u["output_tokens"]))
            _, raw = await _post(s, edge + "/v1/messages", {"model": MODEL, "max_tokens": 10,
                                                            "messages": USER, "stream": True})
            ev = _sse(raw)
            start = next(e for e in ev if e["type"] == "message_start")["message"]["usage"]
            delta = [e for e in ev if e["type"] == "message_delta"][-1]["usage"]
            prompt = delta.get("input_tokens", start["input_tokens"])  # the final count
            stated.append(("/v1/messages", True, prompt, delta["output_tokens"]))
            for stream in (False, True):
                _, raw = await _post(s, edge + "/v1/responses",
                                     {"model": MODEL, "input": "one two three",
                                      "max_output_tokens": 9, "stream": stream})
                ends = ("response.completed", "response.incomplete")  # max_output_tokens
                u = (json.loads(raw) if not stream else next(
                    e for e in _sse(raw) if e["type"] in ends)["response"])["usage"]
                stated.append(("/v1/responses", stream, u["input_tokens"], u["output_tokens"]))
            for path, body in (("/api/chat", {"messages": USER}),
                               ("/api/generate", {"prompt": "one two three"})):
                for stream in (False, True):
                    kind, raw = await _post(s, edge + path, {"model": MODEL, "stream": stream,
                                                             "options": {"num_predict": 7},
                                                             **body})
                    lines = [json.loads(x) for x in raw.splitlines() if x.strip()]
                    assert ("ndjson" in kind) == stream and len(lines) > stream
                    done = lines[-1]
                    assert done["done"] is True
                    stated.append((path, stream, done["prompt_eval_count"], done["eval_count"]))
            _, raw = await _post(s, edge + "/api/embed", {"model": MODEL, "input": "a b c d"})
            stated.append(("/api/embed", False, json.loads(raw)["prompt_eval_count"], 0))
            _, raw = await _post(s, edge + "/v1/embeddings", {"model": MODEL, "input": "a b"})
            stated.append(("/v1/embeddings", False, json.loads(raw)["usage"]["prompt_tokens"], 0))
        assert all(p > 0 for _, _, p, _ in stated), stated
        assert [c for _, _, _, c in stated][:8] == [10, 10, 9, 9, 7, 7, 7, 7]
        rows = await until(lambda: len(records(edge)) == len(stated) and records(edge))
        assert [(r.path, r.stream, r.tokens.prompt, r.tokens.completion) for r in rows] == stated
        assert not any(r.tokens.estimated or r.abandoned for r in rows)
        m = await metrics(edge)
        assert m[("eldric_edge_tokens_total", "anonymous", MODEL, "completion")] == \
            sum(c for _, _, _, c in stated)


async def _fake_cluster(tmp_path, fake, **edge_flags):
    """The same chain with the worker in front of the fake OpenAI server."""
    return cluster(tmp_path, worker_flags={"backend": "openai", "backend_url": url_of(fake)},
                   **edge_flags)


FAKE = openai_server.MODELS[0]


async def test_a_backend_without_usage_is_estimated(fake_openai_server, tmp_path):
    knobs = fake_openai_server.app[openai_server.KNOBS]
    knobs.usage = False
    async with await _fake_cluster(tmp_path, fake_openai_server) as (edge, _):
        body = {"model": FAKE, "messages": [{"role": "user", "content": "hello there"}]}
        async with aiohttp.ClientSession() as s:
            await _post(s, edge + "/v1/chat/completions", body)
            _, raw = await _post(s, edge + "/v1/chat/completions", {**body, "stream": True})
        assert b'"usage"' not in raw
        rows = await until(lambda: len(records(edge)) == 2 and records(edge))
        # the estimate: " w0 w1 w2 w3 w4" is 10 pieces (" w", "0", …); "hello there" 2,
        # + 4 for the message
        assert [(r.tokens.prompt, r.tokens.completion, r.tokens.estimated) for r in rows] == \
            [(6, 10, True)] * 2
        assert json.loads(knobs.requests[-1]["body"])["stream_options"] == {"include_usage": True}


async def test_cached_tokens_and_prices(fake_openai_server, tmp_path):
    knobs = fake_openai_server.app[openai_server.KNOBS]
    knobs.cached = 2
    prices = json.dumps({FAKE: {"input": 1.0, "output": 4.0, "cached": 0.5}})
    async with await _fake_cluster(tmp_path, fake_openai_server,
                                   usage_prices=prices) as (edge, _):
        body = {"model": FAKE, "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as s:
            await _post(s, edge + "/v1/chat/completions", body)
            await _post(s, edge + "/v1/chat/completions", {**body, "stream": True})
        rows = await until(lambda: len(records(edge)) == 2 and records(edge))
        cost = (1 * 1.0 + 2 * 0.5 + 5 * 4.0) / 1e6  # 3 prompt (2 cached), 5 completion
        assert [(r.tokens.prompt, r.tokens.cached, r.cost) for r in rows] == [(3, 2, cost)] * 2
        m = await metrics(edge)
        assert m[("eldric_edge_tokens_total", "anonymous", FAKE, "cached")] == 4
        assert abs(m[("eldric_edge_cost_total", "anonymous", FAKE, "")] - 2 * cost) < 1e-12


async def test_native_ollama_counted_from_its_done_line(fake_ollama_server, tmp_path):
    """A worker in front of Ollama relays its NDJSON as it is: the edge reads the done
    line's prompt_eval_count / eval_count (the fake's are Ollama's documented example)."""
    from tests.fakes import ollama

    async with cluster(tmp_path, worker_flags={"backend": "ollama",
                                               "backend_url": url_of(fake_ollama_server)}) \
            as (edge, _):
        model = ollama.TAGS[0]
        async with aiohttp.ClientSession() as s:
            for path, body in (("/api/chat", {"messages": USER}),
                               ("/api/generate", {"prompt": "one two"})):
                for stream in (True, False):
                    await _post(s, edge + path, {"model": model, "stream": stream, **body})
        rows = await until(lambda: len(records(edge)) == 4 and records(edge))
        p, c = ollama.METRICS["prompt_eval_count"], ollama.METRICS["eval_count"]
        assert [(r.tokens.prompt, r.tokens.completion, r.tokens.estimated, r.stream)
                for r in rows] == [(p, c, False, True), (p, c, False, False)] * 2


async def test_a_client_leaving_before_any_byte_still_counts_its_prompt(fake_openai_server,
                                                                        tmp_path):
    knobs = fake_openai_server.app[openai_server.KNOBS]
    knobs.hold = 3.0  # the backend still reading the prompt
    async with await _fake_cluster(tmp_path, fake_openai_server) as (edge, _):
        body = {"model": FAKE, "messages": [{"role": "user", "content": "hello there"}],
                "stream": True}
        async with aiohttp.ClientSession() as s:
            try:
                async with s.post(edge + "/v1/chat/completions", json=body,
                                  timeout=aiohttp.ClientTimeout(total=0.5)) as r:
                    await r.read()
            except TimeoutError:
                pass
        (row,) = await until(lambda: records(edge), timeout=10)
        assert row.abandoned and row.status == 499
        assert (row.tokens.prompt, row.tokens.completion, row.tokens.estimated) == (6, 0, True)
