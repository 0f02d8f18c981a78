"""Usage of a request the plugin tool loop answers: its rounds go to the routers past
the edge's relay, so the client's request is counted where the loop answers it."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import until
from tests.fakes import scripted
from tests.plugins.kit import KEY, edge, plugins_dir, router
from tests.roles.edge_usage.helpers import records, watch

M = "m-tools"
ASK = [{"role": "user", "content": "What is (17+4)*3.5?"}]
CALC = ("call_1", "calculate", json.dumps({"expression": "(17+4)*3.5"}))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_the_tool_loop_is_counted_once_under_the_client(tmp_path, aiohttp_server,
                                                               stream):
    script = await scripted.serve(aiohttp_server, [M, "m-plain"])
    script.on(model=M, call=0, tool_calls=[CALC])
    script.on(model=M, call=1, text="It is 73.5.")
    plugins = plugins_dir(tmp_path, "calculator")
    async with router(tmp_path, script.url) as r, edge(tmp_path, r["router"], plugins) as e:
        watch(e["edge"])
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0)
        if stream:
            async for _ in await client.chat.completions.create(model=M, messages=ASK,
                                                                stream=True):
                pass
        else:
            usage = (await client.chat.completions.create(model=M, messages=ASK)).usage
        plain = await client.chat.completions.create(model="m-plain", messages=ASK)
        await client.close()
        rows = await until(lambda: len(records(e["edge"])) == 2 and records(e["edge"]))
    loop, relayed = rows
    assert loop.client == relayed.client == "key-1" and loop.model == M
    assert loop.status == 200 and not loop.abandoned
    if stream:  # the loop's own stream is not tapped: estimated
        assert loop.tokens.estimated and loop.tokens.prompt > 0
    else:  # the sum of both rounds, as the reply states it
        assert (loop.tokens.prompt, loop.tokens.completion, loop.tokens.estimated) == \
            (usage.prompt_tokens, usage.completion_tokens, False)
    assert relayed.model == "m-plain" and relayed.tokens.completion == \
        plain.usage.completion_tokens
