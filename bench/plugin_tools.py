"""What a plugin tool round trip adds over the model's own time (a benchmark, not a test).

    python bench/plugin_tools.py [--requests 50] [--tokens 16] [--delay 4] [--hold 20]

Starts a scripted backend (tests/fakes/scripted.py, its own process) with one model that
asks for the calculator tool when the prompt says "compute" (after --hold ms, as a model
reading its prompt would) and answers --tokens words at --delay ms a word once the tool's
result is in the conversation; a real eldric router in front of it, and a real eldric edge
in front of that with the shipped calculator tool plugin (examples/plugins/calculator, a
real child process). Then, one request at a time, so the figures are latencies:

- `model: the call asking for the tool` and `model: the call answering`: the two calls
  the round trip makes, sent to the router directly, whole and streamed: the model's own
  time (with the router hop, which the edge's calls pay too);
- `round trip through the edge, whole` / `streamed (end)`: the client's request to the
  edge, which offers the tool, runs it in the plugin and asks again;
- `overhead`: the round trip minus the model's two calls (per request, the model's time
  taken as the p50 of its calls); `of which the tool call`: the calculator's own p50 from
  the status API (the plugin process's round trip, JSON-RPC over its pipes);
- `edge hop, no tool` (the same kind of request with `X-Eldric-Tools: none`, minus the
  router direct): what the edge costs any request, for scale (the round trip pays it on
  its first call; the loop's second call goes from the edge to the router directly).

Prints p50 and p90 in ms. Bounded: three processes (and the plugin's child) on 127.0.0.1,
all stopped at the end (also on error or Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's eldric and tests.fakes
sys.path.insert(0, str(Path(__file__).parent))
import procs  # noqa: E402  bench/procs.py
from swarm import _Forgetful, pct, row  # noqa: E402  bench/swarm.py

MODEL = "m-tools"
KEY, ADMIN = "sk-bench", "adm-bench"
ASK = [{"role": "user", "content": "compute (17+4)*3.5"}]
CALL = {"id": "call_1", "type": "function",
        "function": {"name": "calculate", "arguments": json.dumps({"expression": "(17+4)*3.5"})}}
ANSWERING = [*ASK, {"role": "assistant", "content": None, "tool_calls": [CALL]},
             {"role": "tool", "tool_call_id": "call_1", "content": "73.5"}]
PLAIN = [{"role": "user", "content": "hello"}]


def serve_backend(port: int, tokens: int, delay_ms: float, hold_ms: float) -> None:
    from aiohttp import web

    from tests.fakes import scripted

    app = scripted.make_app([MODEL], name=MODEL)
    words = " ".join(f"w{i}" for i in range(tokens))
    script = app[scripted.SCRIPT]
    script.on(contains="73.5", text=words, delay=delay_ms / 1000)  # the tool's result is in
    script.on(contains="compute", hold=hold_ms / 1000,
              tool_calls=[(CALL["id"], "calculate", CALL["function"]["arguments"])])
    script.on(text=words, delay=delay_ms / 1000)
    script.calls = _Forgetful()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None,
                handler_cancellation=True)


async def _post(s: aiohttp.ClientSession, url: str, body: dict, headers: dict | None = None,
                ) -> tuple[float, dict]:
    t0 = time.perf_counter()
    async with s.post(url + "/v1/chat/completions", json=body, headers=headers or {}) as r:
        reply = await r.json()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {reply}")
    return (time.perf_counter() - t0) * 1000, reply


async def _streamed(s: aiohttp.ClientSession, url: str, body: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    text = ""
    async with s.post(url + "/v1/chat/completions", json={**body, "stream": True},
                      headers={"Authorization": f"Bearer {KEY}"}) as r:
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {await r.text()}")
        async for line in r.content:
            if line.startswith(b"data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                text += (choices[0].get("delta") or {}).get("content") or ""
    return (time.perf_counter() - t0) * 1000, text


async def measure(router: str, edge: str, n: int) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession() as s:
        for _ in range(3):  # warm-up: connections, the plugin's first calls
            await _post(s, edge, {"model": MODEL, "messages": ASK}, auth)
            await _streamed(s, edge, {"model": MODEL, "messages": ASK})
        asking, answering, whole, streamed, router_plain, edge_plain = [], [], [], [], [], []
        asking_s, answering_s = [], []
        for _ in range(n):
            t, reply = await _post(s, router, {"model": MODEL, "messages": ASK})
            assert reply["choices"][0]["message"]["tool_calls"], reply
            asking.append(t)
            answering.append((await _post(s, router, {"model": MODEL, "messages": ANSWERING}))[0])
            t, reply = await _post(s, edge, {"model": MODEL, "messages": ASK}, auth)
            assert reply["choices"][0]["message"]["content"].startswith("w0"), reply
            whole.append(t)
            asking_s.append((await _streamed(s, router, {"model": MODEL, "messages": ASK}))[0])
            answering_s.append((await _streamed(s, router, {"model": MODEL,
                                                            "messages": ANSWERING}))[0])
            t, text = await _streamed(s, edge, {"model": MODEL, "messages": ASK})
            assert text.startswith("w0"), text
            streamed.append(t)
            router_plain.append((await _post(s, router, {"model": MODEL, "messages": PLAIN}))[0])
            edge_plain.append((await _post(s, edge, {"model": MODEL, "messages": PLAIN},
                                           {**auth, "X-Eldric-Tools": "none"}))[0])
        async with s.get(edge + "/api/v1/plugins",
                         headers={"Authorization": f"Bearer {ADMIN}"}) as r:
            status = await r.json()
    calc = next(p for p in status["plugins"] if p["id"] == "calculator")
    model = pct(asking, 50) + pct(answering, 50)
    model_s = pct(asking_s, 50) + pct(answering_s, 50)
    print()
    print("all figures in ms, one request at a time")
    print(row("model: the call asking for the tool (router direct)", asking))
    print(row("model: the call answering (router direct)", answering))
    print(f"{'model: both calls (p50 + p50)':<56} {model:8.1f}")
    print(row("model, streamed: the call asking for the tool", asking_s))
    print(row("model, streamed: the call answering", answering_s))
    print(f"{'model, streamed: both calls (p50 + p50)':<56} {model_s:8.1f}")
    print(row("round trip through the edge, whole", whole))
    print(row("round trip through the edge, streamed (end)", streamed))
    print(row("overhead, whole (round trip - model)", [t - model for t in whole]))
    print(row("overhead, streamed (round trip - model streamed)",
              [t - model_s for t in streamed]))
    print(f"{'  of which the tool call (calculator p50, status API)':<56} "
          f"{calc['p50_ms']:8.3f}   (calls={calc['calls']}, failures={calc['failures']})")
    print(row("edge hop, no tool (edge - router, same request)",
              [e - r for e, r in zip(edge_plain, router_plain, strict=True)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--delay", type=float, default=4.0, help="ms per answered token")
    ap.add_argument("--hold", type=float, default=20.0, help="ms before the tool call")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--backend", nargs=4, metavar=("PORT", "TOKENS", "DELAY_MS", "HOLD_MS"),
                    help=argparse.SUPPRESS)  # internal: the backend process
    args = ap.parse_args()
    if args.backend:
        port, tokens, delay, hold = args.backend
        serve_backend(int(port), int(tokens), float(delay), float(hold))
        return
    tmp = Path(tempfile.mkdtemp(prefix="eldric-bench-tools-"))
    started: list[procs.Proc] = []
    try:
        port = procs.free_port()
        backend = f"http://127.0.0.1:{port}"
        started.append(procs.Proc("backend", [
            sys.executable, __file__, "--backend", str(port), str(args.tokens),
            str(args.delay), str(args.hold)], tmp / "backend.log"))
        procs.wait_healthy(started[-1], backend + "/v1/models")
        port = procs.free_port()
        router = f"http://127.0.0.1:{port}"
        started.append(procs.Proc("router", [
            sys.executable, "-m", "eldric", "--role", "router", "--workers", backend,
            "--port", str(port), "--bind", "127.0.0.1", "--data-dir", str(tmp / "r"),
            "--log-level", "warning"], tmp / "router.log"))
        procs.wait_healthy(started[-1], router + "/health")
        plugins = tmp / "plugins"
        shutil.copytree(ROOT / "examples" / "plugins" / "calculator", plugins / "calculator")
        (plugins / "enabled.json").write_text('["calculator"]')
        # offered to every request (the valve; by default only to those that ask)
        (plugins / "calculator" / "valves.json").write_text('{"offer": "always"}')
        port = procs.free_port()
        edge = f"http://127.0.0.1:{port}"
        started.append(procs.Proc("edge", [
            sys.executable, "-m", "eldric", "--role", "edge", "--no-tls", "--http-port",
            str(port), "--bind", "127.0.0.1", "--routers", router, "--api-key", KEY,
            "--admin-key", ADMIN, "--plugins-dir", str(plugins), "--data-dir",
            str(tmp / "e"), "--global-rpm", "0", "--per-ip-rpm", "0", "--per-key-rpm", "0",
            "--log-level", "warning"],
            tmp / "edge.log"))
        procs.wait_healthy(started[-1], edge + "/health")
        procs.log(f"model: tool call after {args.hold:g} ms, then {args.tokens} tokens at "
                  f"{args.delay:g} ms; router {router}; edge {edge} with the calculator tool")
        asyncio.run(measure(router, edge, args.requests))
    finally:
        for p in reversed(started):
            p.stop()
        if args.keep_tmp:
            procs.log(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
