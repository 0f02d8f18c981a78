"""A failed `eldric chat` is one line on stderr naming the HTTP status and eldric's error
code (or that the endpoint cannot be reached), and a non-zero exit: the role down, a
wrong key, an unknown model, a reply that breaks off, a bad config file, no prompt.
Interactive, the same line, and the session goes on."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from tests.client.terminal import leave, piped, prompt, say, spawn, step
from tests.conftest import free_port, run_eldric, until, url_of
from tests.fakes import scripted

LOOP = "127.0.0.1"
KEY = "sk-chat"


@pytest.fixture
async def edge(aiohttp_server, tmp_path):
    """edge (key KEY) -> router -> the scripted backend serving m-a."""
    script = await scripted.serve(aiohttp_server, ["m-a"])
    async with run_eldric("router", tmp_path / "r", port=0, bind=LOOP,
                          workers=script.url) as r, \
            run_eldric("edge", tmp_path / "e", no_tls=True, http_port=0, bind=LOOP,
                       routers=r["router"], api_key=KEY) as e:
        yield e["edge"]


def one_line(done) -> str:  # type: ignore[no-untyped-def]
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "expected"), [
    (["--key", "wrong"], "error: HTTP 401 invalid_api_key: "),
    ([], "error: HTTP 401 "),  # no key at all
    (["--key", KEY, "--model", "nope"], "error: HTTP 404 model_not_found: "),
])
async def test_refused_by_the_edge(edge, tmp_path, args, expected):
    done = await step(piped, tmp_path, "--url", edge, *args, "hi")
    assert one_line(done).startswith(expected)


async def test_the_endpoint_down(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    line = one_line(await step(piped, tmp_path, "--url", url, "--model", "m", "hi"))
    assert line.startswith(f"error: cannot reach {url}/v1/chat/completions")
    # with no model named, the model list is what cannot be reached
    line = one_line(await step(piped, tmp_path, "--url", url, "hi"))
    assert line.startswith(f"error: cannot reach {url}/v1/models")
    # the endpoint from ELDRIC_URL when no flag names one
    line = one_line(await step(piped, tmp_path, "hi", ELDRIC_URL=url))
    assert url in line


async def test_a_reply_that_breaks_off(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a"])
    script.on(text="one two three four five", die_after=2)
    done = await step(piped, tmp_path, "--url", script.url, "hi")
    assert done.returncode == 1
    assert done.stdout.startswith("one two")  # what came was shown
    assert done.stderr.splitlines()[-1].startswith("error: in the reply: incomplete")


async def sse_server(aiohttp_server, events: list[dict]) -> str:  # type: ignore[no-untyped-def]
    """An endpoint whose chat reply is a 200 with these SSE events, then the body's end."""
    async def chat(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in events:
            await resp.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return url_of(await aiohttp_server(app))


PIECE = {"choices": [{"index": 0, "delta": {"content": "Partial"}, "finish_reason": None}]}


async def test_an_error_event_mid_reply(aiohttp_server, tmp_path):
    # a backend's own error event after the reply began (llama.cpp's server and eldric's
    # hops send one): {"error": {...}} in a data line, the status already 200
    error = {"error": {"message": "the backend fell over", "type": "server_error",
                       "code": "backend_error"}}
    url = await sse_server(aiohttp_server, [PIECE, error])
    done = await step(piped, tmp_path, "--url", url, "--model", "m", "hi")
    assert done.returncode == 1
    assert done.stdout == "Partial\n"
    assert done.stderr.splitlines()[-1] == (
        "error: in the reply: backend_error: the backend fell over")


async def test_a_stream_that_ends_before_the_reply(aiohttp_server, tmp_path):
    # the body ends cleanly, but with no finish_reason and no [DONE]: not a whole reply
    url = await sse_server(aiohttp_server, [PIECE])
    done = await step(piped, tmp_path, "--url", url, "--model", "m", "hi")
    assert done.returncode == 1 and done.stdout == "Partial\n"
    assert done.stderr.splitlines()[-1] == (
        "error: in the reply: incomplete: the stream ended before the reply did")
    # the same events with a finish_reason are a whole reply
    whole = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    url = await sse_server(aiohttp_server, [PIECE, whole])
    done = await step(piped, tmp_path, "--url", url, "--model", "m", "hi")
    assert done.returncode == 0 and done.stdout == "Partial\n"


async def test_no_models_listed(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, [])
    line = one_line(await step(piped, tmp_path, "--url", script.url, "hi"))
    assert line.startswith("error: ") and "--model" in line


@pytest.mark.parametrize("text", ['{"url": 1}', '{"nope": "x"}', "{"])
async def test_a_bad_config_file(tmp_path, text):
    (tmp_path / "config" / "eldric").mkdir(parents=True)
    (tmp_path / "config" / "eldric" / "client.json").write_text(text)
    line = one_line(await step(piped, tmp_path, "hi"))
    assert line.startswith("error: ") and "client.json" in line


async def test_an_empty_prompt(tmp_path):
    line = one_line(await step(piped, tmp_path, stdin="  \n"))
    assert line == "error: the prompt is empty"


async def test_continue_with_nothing_saved(tmp_path):
    line = one_line(await step(piped, tmp_path, "--continue", "hi"))
    assert line.startswith("error: no conversation to continue")


async def test_interactive_errors_leave_the_session_open(edge, tmp_path):
    child = spawn(tmp_path, "--url", edge, "--key", KEY)
    await step(prompt, child)
    await step(say, child, "/model nope")
    assert "error: HTTP 404 model_not_found: " in await step(say, child, "hi")
    assert "error: unknown command /frobnicate" in await step(say, child, "/frobnicate")
    await step(say, child, "/model m-a")
    assert "m-a answer 0" in await step(say, child, "hi again")
    assert await step(leave, child) == 0
    # the refused question was not kept; the answered one was
    (saved,) = (tmp_path / "state" / "eldric" / "chat").glob("*.json")
    conv = json.loads(saved.read_text())
    assert [m["content"] for m in conv["messages"]] == ["hi again", "m-a answer 0"]


async def test_ctrl_c_while_waiting_on_the_model_list_keeps_the_session(aiohttp_server,
                                                                         tmp_path):
    """An endpoint whose /v1/models never answers: Ctrl-C during the start-up lookup and
    during /models brings the prompt back (it used to leave the session, "Aborted!" and
    exit 1 from /models); /model NAME and /exit still work."""
    import asyncio

    asked = []

    async def hang(request: web.Request) -> web.Response:
        asked.append(request.path)
        await asyncio.sleep(60)
        return web.json_response({"data": []})
    app = web.Application()
    app.router.add_get("/v1/models", hang)
    url = url_of(await aiohttp_server(app))
    child = spawn(tmp_path, "--url", url)
    # Ctrl-C once the lookup is waiting on the endpoint (it asked), not after a fixed wait
    await until(lambda: len(asked) == 1, timeout=15)
    await asyncio.sleep(0.1)
    child.sendintr()
    assert "/model NAME" in await step(prompt, child)
    child.sendline("/models")
    await until(lambda: len(asked) == 2, timeout=15)
    await asyncio.sleep(0.1)
    child.sendintr()
    assert "[stopped]" in await step(prompt, child)
    assert "model: m-x" in await step(say, child, "/model m-x")
    assert await step(leave, child) == 0
