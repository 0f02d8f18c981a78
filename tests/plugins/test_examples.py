"""The shipped tool examples as the edge runs them (real child processes through
PluginProcess, the edge's supervisor): the calculator computes and refuses what is not
arithmetic (it never evals), the clock tells the time in a zone; and both composed with a
filter on the edge: the PII-redaction filter's inlet runs before the tool loop and its
stream hook on the loop's streamed answer."""

from __future__ import annotations

import datetime
import json

import openai

from eldric.roles.edge.plugins.process import PluginProcess
from tests.fakes import scripted
from tests.plugins.kit import EXAMPLES, KEY, edge, plugins_dir, router


async def _tool(pid: str, name: str, **arguments) -> str:  # type: ignore[no-untyped-def]
    p = PluginProcess(pid, EXAMPLES / pid, init=lambda: {
        "manifest": {}, "valves": {}, "edge_url": "", "token": ""})
    await p.start()
    try:
        return (await p.call("tool", {"name": name, "arguments": arguments,
                                      "user": {"name": "t"}}))["content"]
    finally:
        await p.stop()


async def test_the_calculator_computes_and_refuses_what_is_not_arithmetic():
    for expression, want in (("(17+4)*3.5", "73.5"), ("2^10 + sqrt(16)", "1028"),
                             ("7 // 2 + 7 % 2", "4"), ("-3 ** 2", "-9")):
        assert await _tool("calculator", "calculate", expression=expression) == want
    for expression, why in (("__import__('os').system('echo pwned')", "not allowed"),
                            ("open('/etc/passwd').read()", "not allowed"),
                            ("(1).__class__", "not allowed"), ("9**9**9", "exponent"),
                            ("10**200 * 10**200", "too large"), ("1/0", "division by zero"),
                            ("2 +", "not an arithmetic expression"), ("x" * 501, "longer")):
        got = await _tool("calculator", "calculate", expression=expression)
        assert got.startswith("error:") and why in got, (expression, got)


async def test_the_clock_tells_the_time_in_a_zone():
    got = await _tool("clock", "current_time", timezone="Asia/Tokyo")
    stamp = datetime.datetime.fromisoformat(got.split(" ")[0])
    assert stamp.utcoffset() == datetime.timedelta(hours=9)
    assert abs((stamp - datetime.datetime.now(datetime.UTC)).total_seconds()) < 60
    assert (await _tool("clock", "current_time", timezone="Mars/Olympus")).startswith("error:")


async def test_a_filter_runs_around_the_tool_loop(tmp_path, aiohttp_server):
    script = await scripted.serve(aiohttp_server, ["m"])
    script.on(model="m", call=0, tool_calls=[("c1", "calculate", json.dumps(
        {"expression": "6*7"}))])
    script.on(model="m", call=1, text="Mail bob@example.com the answer: 42")
    plugins = plugins_dir(tmp_path, "calculator", "pii-redact")
    async with router(tmp_path, script.url) as r, edge(tmp_path, r["router"], plugins) as e:
        client = openai.AsyncOpenAI(base_url=e["edge"] + "/v1", api_key=KEY, max_retries=0)
        text = ""
        async for chunk in await client.chat.completions.create(
                model="m", stream=True, messages=[
                    {"role": "user", "content": "I am alice@example.com: what is 6*7?"}]):
            text += chunk.choices[0].delta.content or "" if chunk.choices else ""
        await client.close()
    first, second = script.asked("m")
    assert "alice@example.com" not in first.prompt and "[email]" in first.prompt  # inlet
    assert "calculate" in [t["function"]["name"] for t in first.body["tools"]]
    assert second.messages[-1]["content"] == "42"  # the tool ran
    assert "bob@example.com" not in text and "[email]" in text and "42" in text  # stream hook
