"""Conversations kept in $XDG_STATE_HOME/eldric/chat/ (one JSON file each) and brought
back: `--continue` (interactive and one-shot) sends the earlier turns again, /history
lists and resumes, /new starts another file, /save writes Markdown, and the typed lines
come back with the up arrow in the next session (readline)."""

from __future__ import annotations

import json

from tests.client.terminal import leave, piped, prompt, say, spawn, step
from tests.fakes import scripted

UP = "\x1b[A"


def saved(tmp_path) -> list[dict]:  # type: ignore[no-untyped-def]
    root = tmp_path / "state" / "eldric" / "chat"
    return [json.loads(p.read_text()) for p in sorted(root.glob("*.json"))]


async def test_history_written_and_resumed(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a", "m-b"])
    url = script.url
    child = spawn(tmp_path, "--url", url, "-m", "m-b", "-s", "be brief")
    await step(prompt, child)
    assert "m-b answer 0" in await step(say, child, "first question")
    assert await step(leave, child) == 0
    (conv,) = saved(tmp_path)
    assert (conv["model"], conv["system"]) == ("m-b", "be brief")
    assert [(m["role"], m["content"]) for m in conv["messages"]] == [
        ("user", "first question"), ("assistant", "m-b answer 0")]

    # --continue: the turns shown again, and sent again with the next question
    child = spawn(tmp_path, "--url", url, "--continue")
    shown = await step(prompt, child)
    assert "first question" in shown and "m-b answer 0" in shown and "resumed" in shown
    assert "m-b answer 1" in await step(say, child, "second question")
    assert [m["content"] for m in script.calls[1].messages] == [
        "be brief", "first question", "m-b answer 0", "second question"]
    assert script.calls[1].model == "m-b"  # the conversation's model and system kept

    await step(say, child, "/new")
    assert await step(leave, child) == 0
    (conv,) = saved(tmp_path)  # the same file, grown; /new with no turn writes nothing
    assert len(conv["messages"]) == 4

    # one-shot --continue, a flag over the conversation's model
    done = await step(piped, tmp_path, "--url", url, "--continue", "-m", "m-a", "third")
    assert done.returncode == 0, done.stderr
    assert script.calls[2].model == "m-a" and len(script.calls[2].messages) == 6
    (conv,) = saved(tmp_path)
    assert len(conv["messages"]) == 6 and conv["model"] == "m-a"


async def test_history_new_save_and_readline(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a"])
    child = spawn(tmp_path, "--url", script.url)
    await step(prompt, child)
    await step(say, child, "about cats")
    await step(say, child, "/new")
    await step(say, child, "about dogs")
    assert len(script.calls[1].messages) == 1  # /new: the cats not sent again
    child.sendline("/history")
    listed = await step(prompt, child)
    assert listed.index("about dogs") < listed.index("about cats")  # newest first
    child.sendline("/history 2")  # resume the cats
    assert "resumed" in await step(prompt, child)
    await step(say, child, "more")
    assert [m["content"] for m in script.calls[2].messages] == [
        "about cats", "m-a answer 0", "more"]
    out = tmp_path / "cats.md"
    assert f"saved to {out}" in await step(say, child, f"/save {out}")
    assert "error: no conversation '9'" in await step(say, child, "/history 9")
    assert "error: /save needs a file name" in await step(say, child, "/save")
    assert await step(leave, child) == 0
    md = out.read_text()
    assert md.startswith("# about cats")
    assert "## User\n\nabout cats\n\n## Assistant\n\nm-a answer 0\n\n## User\n\nmore" in md
    assert len(saved(tmp_path)) == 2

    # the next session: the up arrow brings back the last line typed ("/exit"), then
    # the one before it
    child = spawn(tmp_path, "--url", script.url)
    await step(prompt, child)
    child.send(UP + UP + UP + "\r")  # /exit, /save, /history 9 ... -> "/history 9"
    assert "error: no conversation '9'" in await step(prompt, child)
    assert await step(leave, child) == 0


async def test_two_sessions_continuing_one_conversation_lose_nothing(aiohttp_server, tmp_path):
    """Two terminals `--continue` the same conversation: the second to save finds the file
    changed by the first and goes on in a new file (a fork), so neither's turns are
    overwritten."""
    script = await scripted.serve(aiohttp_server, ["m-a"])
    first = await step(piped, tmp_path, "--url", script.url, "the start")
    assert first.returncode == 0, first.stderr
    one, two = (spawn(tmp_path, "--url", script.url, "--continue") for _ in range(2))
    await step(prompt, one)
    await step(prompt, two)
    await step(say, one, "from one")
    assert "new file" in await step(say, two, "from two")
    assert await step(leave, one) == 0 and await step(leave, two) == 0
    users = sorted(tuple(m["content"] for m in c["messages"] if m["role"] == "user")
                   for c in saved(tmp_path))
    assert users == [("the start", "from one"), ("the start", "from two")]


async def test_continue_past_a_corrupt_file_says_so_and_keeps_it(aiohttp_server, tmp_path):
    """The newest conversation's file is damaged: `--continue` says which file it cannot
    read and resumes the one before, and the damaged file is left byte for byte."""
    import os

    script = await scripted.serve(aiohttp_server, ["m-a"])
    first = await step(piped, tmp_path, "--url", script.url, "the start")
    assert first.returncode == 0, first.stderr
    root = tmp_path / "state" / "eldric" / "chat"
    bad = root / "20990101-000000-abcdef.json"
    bad.write_bytes(b'{"id": "20990101-000000-abcdef", "messages": [{"role": "us')
    later = bad.stat().st_mtime + 10
    os.utime(bad, (later, later))
    done = await step(piped, tmp_path, "--url", script.url, "--continue", "more")
    assert done.returncode == 0, done.stderr
    assert f"cannot read {bad}" in done.stderr.splitlines()[0]
    assert script.calls[-1].last_user == "more" and len(script.calls[-1].messages) == 3
    assert bad.read_bytes().endswith(b'"role": "us')
