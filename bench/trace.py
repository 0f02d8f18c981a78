"""What tracing costs the worker hop: CPU per request with tracing off and on.

    python bench/trace.py [TREE]

One process: a tiny backend (aiohttp, OpenAI-shaped chat reply), an eldric worker (vllm
kind) in front of it, an OTLP/HTTP receiver, and a client sending N requests one after
another over keep-alive. Prints process CPU per request (µs; client, backend and worker
together, so only the differences mean something) for: tracing off, tracing on (every
request sampled and exported), on with --otel-sample-ratio 0. TREE: another checkout to
import eldric from (e.g. the commit before tracing: off there vs off here).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent.parent))
sys.path.insert(1, str(Path(__file__).parent.parent))  # tests.fakes.otlp from this tree

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from eldric import config, registry  # noqa: E402
from eldric.app import serve  # noqa: E402

N = 3000
REPLY = (b'{"id":"c1","object":"chat.completion","created":1,"model":"m1","choices":[{"index":0,'
         b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
         b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}')
BODY = b'{"model":"m1","messages":[{"role":"user","content":"hi"}]}'


async def _backend() -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions",
                        lambda r: web.Response(body=REPLY, content_type="application/json"))
    app.router.add_get("/v1/models", lambda r: web.json_response(
        {"object": "list", "data": [{"id": "m1", "object": "model"}]}))
    app.router.add_get("/health", lambda r: web.json_response({}))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


async def _one(backend: str, tmp: str, **process: object) -> float:
    roles = registry.resolve("worker")
    flags = {"process.data_dir": (None, tmp), "process.log_level": (None, "warning")}
    flags.update({f"process.{k}": (None, v) for k, v in process.items()})
    loaded = config.load({"worker": (roles[0].config, {
        "port": 0, "bind_address": "127.0.0.1", "backend": "vllm", "backend_url": backend})},
        None, {}, flags)
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(roles, loaded.roles, loaded.process,
                                     on_ready=ready.set_result, stop=stop))
    url = (await ready)["worker"] + "/v1/chat/completions"
    async with aiohttp.ClientSession() as s:
        for _ in range(200):  # warm up
            async with s.post(url, data=BODY, headers={"Content-Type": "application/json"}) as r:
                await r.read()
        t0 = time.process_time()
        for _ in range(N):
            async with s.post(url, data=BODY, headers={"Content-Type": "application/json"}) as r:
                assert r.status == 200
                await r.read()
        cpu = time.process_time() - t0
    stop.set()
    await task
    return cpu / N * 1e6


async def main() -> None:
    runner, backend = await _backend()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["off"] = await _one(backend, tmp)
        try:
            from tests.fakes import otlp
            recv = web.AppRunner(otlp.make_app(), access_log=None)
            await recv.setup()
            site = web.TCPSite(recv, "127.0.0.1", 0)
            await site.start()
            endpoint = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
            results["on"] = await _one(backend, tmp, otel_endpoint=endpoint)
            results["on, ratio 0"] = await _one(backend, tmp, otel_endpoint=endpoint,
                                                otel_sample_ratio=0.0)
            await recv.cleanup()
        except (ImportError, KeyError, Exception) as exc:  # a tree without tracing
            print(f"(tracing not measured: {exc!r})")
    await runner.cleanup()
    for name, us in results.items():
        print(f"{name:>12}: {us:7.1f} µs CPU per request (client+backend+worker)")


if __name__ == "__main__":
    import uvloop
    uvloop.run(main())
