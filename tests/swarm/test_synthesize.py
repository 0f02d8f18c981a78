"""swarm/synthesize against scripted backends through a real router."""

from __future__ import annotations

import aiohttp

from tests.conftest import run_eldric
from tests.fakes import scripted

Q = [{"role": "user", "content": "What is the capital of France?"}]


def router(tmp_path, *urls, **flags):
    return run_eldric("router", tmp_path, port=0, bind="127.0.0.1", workers=",".join(urls),
                      health_interval=60_000, **flags)


async def test_smoke(aiohttp_server, tmp_path):
    script = await scripted.serve(aiohttp_server, ["m-a", "m-b", "m-c"])
    async with router(tmp_path, script.url) as urls:
        async with aiohttp.ClientSession() as s:
            async with s.post(urls["router"] + "/v1/chat/completions",
                              json={"model": "swarm/synthesize", "messages": Q}) as r:
                print(r.status, await r.text())
            async with s.post(urls["router"] + "/v1/chat/completions",
                              json={"model": "swarm/synthesize", "messages": Q, "stream": True}) as r:
                print(r.status, await r.text())
    print(script.order())
