"""Edge plugins in tests: write one into a plugins directory, run an edge over it in
front of a scripted backend, drive its admin API."""

from __future__ import annotations

import contextlib
import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai

from tests.conftest import run_eldric, until
from tests.fakes import scripted

ADMIN = {"Authorization": "Bearer adm"}
MODEL = "m"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"


def write_plugin(root: Path, pid: str, code: str, **manifest: Any) -> Path:
    """plugins/<pid>/manifest.json (a filter unless told) and main.py (`code`, dedented)."""
    d = root / pid
    d.mkdir(parents=True, exist_ok=True)
    (d / "manifest.json").write_text(json.dumps({"id": pid, "name": pid, "type": "filter",
                                                 **manifest}))
    (d / "main.py").write_text(textwrap.dedent(code))
    return d


@contextlib.asynccontextmanager
async def edge(tmp_path: Path, script: scripted.Script, plugins: Path,
               **flags: Any) -> AsyncIterator[str]:
    """An edge (plain HTTP, open, admin key "adm") with --plugins-dir in front of the
    scripted backend: its URL."""
    flags = {"no_tls": True, "http_port": 0, "bind": "127.0.0.1", "routers": script.url,
             "admin_key": "adm", "require_api_key": False,
             "plugins_dir": str(plugins), **flags}
    async with run_eldric("edge", tmp_path / "e", **flags) as urls:
        yield urls["edge"]


async def status(s: aiohttp.ClientSession, url: str, pid: str) -> dict[str, Any]:
    async with s.get(url + "/api/v1/plugins", headers=ADMIN) as r:
        assert r.status == 200
        listed = (await r.json())["plugins"]
    return next(p for p in listed if p["id"] == pid)


async def enable(s: aiohttp.ClientSession, url: str, pid: str, *, running: bool = True) -> None:
    async with s.post(f"{url}/api/v1/plugins/{pid}/enable", headers=ADMIN) as r:
        assert r.status == 200, await r.text()
    if running:
        await until(lambda: _running(s, url, pid), timeout=10)


async def _running(s: aiohttp.ClientSession, url: str, pid: str) -> bool:
    return (await status(s, url, pid))["state"] == "running"


def sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0)


async def chat(client: openai.AsyncOpenAI, text: str, **kw: Any) -> Any:
    return await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}], **kw)


async def streamed(client: openai.AsyncOpenAI, text: str) -> str:
    stream = await chat(client, text, stream=True)
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
