"""A backend that ignores the request's stream flag (whole JSON for a stream, SSE for a
whole request): every translated client API still gets the kind of reply it asked for,
judged by its own SDK (anthropic, openai's Responses, ollama) through a worker in front
of the fake vLLM-shaped server (as TGI, which has none of these APIs natively)."""

from __future__ import annotations

import contextlib

import anthropic
import ollama
import openai
import pytest

from tests.conftest import run_eldric, url_of
from tests.fakes import openai_server

M = openai_server.MODELS[0]
TEXT = " w0 w1 w2 w3 w4"  # the fake's five words
HI = [{"role": "user", "content": "hi"}]


@contextlib.asynccontextmanager
async def worker(fake, tmp_path, answer: str):
    fake.app[openai_server.KNOBS].answer = answer
    async with run_eldric("worker", tmp_path, port=0, bind="127.0.0.1", backend="tgi",
                          backend_url=url_of(fake)) as w:
        yield w["worker"]


@pytest.mark.parametrize("answer", ["whole", "sse"])
async def test_anthropic(fake_openai_server, tmp_path, answer):
    async with worker(fake_openai_server, tmp_path, answer) as url, \
            anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0) as claude:
        async with claude.messages.stream(model=M, max_tokens=8, messages=HI) as s:
            final = await s.get_final_message()
        assert (final.content[0].text, final.stop_reason) == (TEXT, "end_turn")
        msg = await claude.messages.create(model=M, max_tokens=8, messages=HI)
        assert (msg.content[0].text, msg.stop_reason) == (TEXT, "end_turn")


@pytest.mark.parametrize("answer", ["whole", "sse"])
async def test_openai_responses(fake_openai_server, tmp_path, answer):
    async with worker(fake_openai_server, tmp_path, answer) as url, \
            openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as c:
        async with c.responses.stream(model=M, input="hi") as s:
            final = await s.get_final_response()
        assert (final.output_text, final.status) == (TEXT, "completed")
        r = await c.responses.create(model=M, input="hi")
        assert (r.output_text, r.status) == (TEXT, "completed")


@pytest.mark.parametrize("answer", ["whole", "sse"])
async def test_ollama(fake_openai_server, tmp_path, answer):
    async with worker(fake_openai_server, tmp_path, answer) as url:
        c = ollama.AsyncClient(host=url)
        parts = [p async for p in await c.chat(M, HI, stream=True)]
        assert "".join(p.message.content for p in parts) == TEXT
        assert parts[-1].done and parts[-1].done_reason == "stop"
        r = await c.chat(M, HI)
        assert (r.message.content, r.done) == (TEXT, True)
        g = await c.generate(M, "hi")
        assert (g.response, g.done) == (TEXT, True)
