"""What `eldric chat` prints: Markdown rendered (code blocks, emphasis) on a terminal,
the reply's own text with --plain or when stdout is a pipe, the timings after each reply,
and one-shot input from PROMPT, stdin or both. Against the scripted OpenAI-compatible
backend directly: `chat` works with any such endpoint."""

from __future__ import annotations

import re

import pexpect

from tests.client.terminal import STATS, piped, seen, spawn, step
from tests.fakes import scripted

ANSWER = "Use this:\n\n```python\nprint('hi')\n```\n\nIt is **very** simple."


async def test_markdown_is_rendered_on_a_terminal(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a"])
    script.on(text=ANSWER)
    child = spawn(tmp_path, "--url", script.url, "how do I print?")
    await step(child.expect, pexpect.EOF)
    shown = seen(child)
    assert "print('hi')" in shown and "simple" in shown
    assert "```" not in shown and "**very**" not in shown  # rendered, not the source
    assert re.search(STATS, shown)
    child.close()
    assert child.exitstatus == 0
    assert script.calls[0].model == "m-a" and script.calls[0].last_user == "how do I print?"


async def test_plain_on_a_terminal_with_the_flag(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a"])
    script.on(text=ANSWER)
    child = spawn(tmp_path, "--url", script.url, "--plain", "how?")
    await step(child.expect, pexpect.EOF)
    raw = child.before
    assert ANSWER.replace("\n", "\r\n") in raw  # the source as it came
    assert "\x1b[" not in raw  # no colour, no cursor movement
    child.close()
    assert child.exitstatus == 0


async def test_piped_stdout_is_the_reply_and_nothing_else(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a"])
    script.on(text=ANSWER)
    done = await step(piped, tmp_path, "--url", script.url, "summarise:",
                      stdin="the file's text\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ANSWER + "\n"
    assert re.fullmatch(STATS + "\n", done.stderr)  # the timings on stderr
    # PROMPT and stdin together: the prompt, then what was piped in
    assert script.calls[0].last_user == "summarise:\n\nthe file's text\n"
    only_stdin = await step(piped, tmp_path, "--url", script.url, stdin="from stdin")
    assert only_stdin.returncode == 0 and script.calls[1].last_user == "from stdin"


async def test_model_and_system_flags_reach_the_request(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a", "m-b"])
    done = await step(piped, tmp_path, "--url", script.url, "-m", "m-b", "-s",
                      "be brief", "hi")
    assert done.returncode == 0, done.stderr
    call = script.calls[0]
    assert call.model == "m-b" and call.system == "be brief"
    assert call.body["stream"] is True
    # ELDRIC_MODEL when no flag names one
    done = await step(piped, tmp_path, "--url", script.url, "hi", ELDRIC_MODEL="m-b")
    assert done.returncode == 0 and script.calls[1].model == "m-b"


async def test_a_long_reply_is_drawn_once_not_redrawn_whole(aiohttp_server, tmp_path):
    """A reply far taller than the terminal: each finished block is printed once. Redrawing
    the whole reply on every token was quadratic (a 300 KB reply took minutes and wrote
    hundreds of MB to the terminal); a code block with blank lines stays one block."""
    paragraphs = [f"para{i} " + "word " * 12 for i in range(400)]
    code = "```python\nfirst = 1\n\n\nsecond = 2\n```"
    text = "\n\n".join(paragraphs[:200] + [code] + paragraphs[200:])
    script = await scripted.serve(aiohttp_server, ["m-a"])
    script.on(text=text)
    child = spawn(tmp_path, "--url", script.url, "go")
    child.maxread = 1 << 20
    await step(child.expect, pexpect.EOF, timeout=120)
    raw = child.before
    child.close()
    assert child.exitstatus == 0
    # each line drawn once, padded to the 120 columns: ~4 times the text; the old code
    # wrote ~350 times it
    assert len(raw.encode()) < 10 * len(text.encode()), len(raw)
    shown = seen(child)
    assert "para0 " in shown and "para399 " in shown and "```" not in shown
    # a finished block is printed once and never drawn again: no copy of it once the next
    # block began (the live part, the unfinished block, is redrawn at 15 Hz while it grows,
    # so on a loaded machine it shows more than once while it streams: counting copies
    # failed then; redrawing the whole reply drew every block again after the next)
    assert shown.rfind("para250 ") < shown.find("para251 ")
    assert shown.rfind("para0 ") < shown.find("para1 ")
    assert re.search(r"first = 1\s*(\n\s*)+second = 2", shown)  # the code block whole
