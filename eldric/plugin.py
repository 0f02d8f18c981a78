"""eldric.plugin: the author's side of an edge plugin, so a plugin is ten lines.

    from eldric import plugin

    @plugin.inlet
    def inlet(body, user):
        body["messages"].insert(0, {"role": "system", "content": plugin.valves["prompt"]})
        return body

    plugin.run()

The edge runs each server-side plugin (tool, filter, pipe) as its own child process,
`python main.py` in the plugin's directory, and speaks JSON-RPC 2.0 to it: one JSON
object per line, edge -> the child's stdin, child -> the edge on stdout. The child's
stderr goes to the edge's log with the plugin id, so run() points sys.stdout at stderr:
a stray print() is a log line, never a corrupt reply. The protocol is written down in
docs/plugins.md; in short the edge calls

    initialize {"manifest", "valves", "edge_url", "edge_cert", "token"} -> {"tools", "models"}
    inlet  {"body", "user"}   -> {"body"}       (refusal: error -32001, data {"status"})
    outlet {"body", "user"}   -> {"body"}
    stream {"event", "user"}  -> {"event": object | null}   (null drops the event)
    tool   {"name", "arguments", "user"} -> {"content": str}
    pipe   {"model", "body", "user"}     -> {"content": str}
           streamed as notifications {"method": "pipe.chunk",
                                      "params": {"call": <id>, "delta": str}} first
    valves {"valves"} -> {}
    cancel {"call": <id>}  (a notification: the edge gave up on that call)

and `user` is {"name": the client's name or "anonymous"}.

Handlers may be plain functions or coroutines (pipes and tools also generators / async
generators of text deltas). Plain tool and pipe handlers run in a worker thread so a slow
one (a pipe calling the cluster) does not hold up the filters; filter handlers run
inline, in order, because they are meant to be quick (and so do initialize and valves,
so no call ever sees stale valves). This module imports nothing of
eldric's: it is all a plugin needs.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["inlet", "outlet", "stream", "tool", "pipe", "valves", "manifest", "edge_url",
           "token", "edge_cert", "edge_ssl", "refuse", "Refusal", "run", "REFUSED", "PARSE_ERROR", "NO_METHOD",
           "BAD_PARAMS", "FAILED"]

# JSON-RPC error codes: the standard ones, and eldric's for a filter's refusal and a
# handler that raised.
PARSE_ERROR = -32700
NO_METHOD = -32601
BAD_PARAMS = -32602
FAILED = -32000
REFUSED = -32001

# Set by the edge's initialize (and valves) call; read them from handlers.
valves: dict[str, Any] = {}
manifest: dict[str, Any] = {}
edge_url: str = ""
token: str = ""
edge_cert: str = ""  # the edge's own certificate (PEM) when it serves HTTPS, else ""

_filters: dict[str, Callable[..., Any]] = {}
_tools: dict[str, tuple[dict[str, Any], Callable[..., Any]]] = {}
_pipes: dict[str, tuple[str, Callable[..., Any]]] = {}


# The wire is the real stdout; print() goes to stderr (the edge's log) from the moment a
# plugin the edge started imports this module, so even a print at import time is a log
# line. (Only in such a child: the edge itself imports the constants above.)
_wire: Any = None
if os.environ.get("ELDRIC_PLUGIN"):
    _wire = sys.stdout.buffer
    sys.stdout = sys.stderr


def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# msgspec (eldric's own dependency, so there wherever eldric is) reads and writes the
# wire several times faster than json: one round trip per filter call and SSE event
# chunk is the cost a filter adds. A value msgspec cannot encode falls back to json.
try:
    import msgspec

    _encode = msgspec.json.Encoder().encode
    _loads: Callable[[bytes], Any] = msgspec.json.Decoder().decode

    def _dumps(obj: Any) -> bytes:
        try:
            return _encode(obj)
        except (TypeError, OverflowError):
            return _json_dumps(obj)
except ImportError:  # a plugin run by hand with only this file
    _loads = json.loads
    _dumps = _json_dumps


class Refusal(Exception):
    """Raised by refuse(): the edge answers the client `status` with `reason`."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status if status in (400, 403) else 403


def refuse(reason: str, status: int = 403) -> None:
    """Refuse the request from an inlet (400 or 403 to the client, with `reason`)."""
    raise Refusal(reason, status)


def _wants_user(fn: Callable[..., Any]) -> bool:
    """Filters may take (body) or (body, user): count the positional parameters once."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def _filter(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _filters[kind] = fn
        fn.__eldric_user__ = _wants_user(fn)  # type: ignore[attr-defined]
        return fn
    return register


inlet = _filter("inlet")
"""@plugin.inlet: def inlet(body, user) -> body (None keeps it); may plugin.refuse()."""
outlet = _filter("outlet")
"""@plugin.outlet: def outlet(body, user) -> body, on a non-stream reply."""
stream = _filter("stream")
"""@plugin.stream: def stream(event, user) -> event | None, per SSE chunk (None drops it)."""


def tool(*, name: str, description: str = "",
         parameters: dict[str, Any] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """@plugin.tool(name=, description=, parameters=JSON Schema): the function is called
    with the model's arguments as keywords (and `user=` if it has such a parameter);
    what it returns (text, or anything JSON) is the tool's result."""
    spec = {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": parameters or {"type": "object", "properties": {}}}}

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _tools[name] = (spec, fn)
        return fn
    return register


def pipe(*, id: str, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """@plugin.pipe(id=, name=): a virtual model. def answer(body, user) returns the
    reply's text, or yields it in pieces (streamed to the client as they come)."""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _pipes[id] = (name or id, fn)
        return fn
    return register


# --- the loop ---------------------------------------------------------------------------

class _Rpc:
    """One child's side of the wire: reads calls from stdin, answers on the real stdout."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.lock = threading.Lock()  # pipe generators in threads write chunks too
        self.calls: dict[Any, asyncio.Task[Any]] = {}

    def send(self, message: dict[str, Any]) -> None:
        line = _dumps(message) + b"\n"
        with self.lock:
            self.out.write(line)
            self.out.flush()

    def reply(self, call_id: Any, result: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "id": call_id, "result": result})

    def error(self, call_id: Any, code: int, message: str, data: Any = None) -> None:
        err: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            err["data"] = data
        self.send({"jsonrpc": "2.0", "id": call_id, "error": err})

    async def handle(self, call_id: Any, method: str, params: dict[str, Any]) -> None:
        try:
            result = await _dispatch(self, call_id, method, params)
        except Refusal as r:
            self.error(call_id, REFUSED, r.reason, {"status": r.status})
        except _NoMethod as e:
            self.error(call_id, NO_METHOD, str(e))
        except (KeyError, TypeError) as e:
            self.error(call_id, BAD_PARAMS, f"{type(e).__name__}: {e}")
        except asyncio.CancelledError:
            pass  # the edge gave up on this call: it expects no answer
        except Exception as e:  # the author's bug: the edge counts it and follows fail_mode
            print(f"plugin: {method} failed: {e!r}", file=sys.stderr)
            self.error(call_id, FAILED, f"{type(e).__name__}: {e}")
        else:
            self.reply(call_id, result)
        finally:
            self.calls.pop(call_id, None)


class _NoMethod(Exception):
    pass


def _user(params: dict[str, Any]) -> dict[str, Any]:
    return params.get("user") or {"name": "anonymous"}


async def _call(fn: Callable[..., Any], *args: Any, thread: bool = False, **kw: Any) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kw)
    if thread:
        return await asyncio.to_thread(fn, *args, **kw)
    return fn(*args, **kw)


async def _text(rpc: _Rpc, call_id: Any, fn: Callable[..., Any], *args: Any, **kw: Any) -> str:
    """Run a tool or pipe handler to its text; generators' pieces go out as pipe.chunk."""
    def chunk(delta: Any) -> str:
        delta = delta if isinstance(delta, str) else json.dumps(delta)
        rpc.send({"jsonrpc": "2.0", "method": "pipe.chunk",
                  "params": {"call": call_id, "delta": delta}})
        return delta

    if inspect.isasyncgenfunction(fn):
        return "".join([chunk(d) async for d in fn(*args, **kw)])
    if inspect.isgeneratorfunction(fn):
        return await asyncio.to_thread(lambda: "".join(chunk(d) for d in fn(*args, **kw)))
    out = await _call(fn, *args, thread=True, **kw)
    return out if isinstance(out, str) else json.dumps(out)


async def _dispatch(rpc: _Rpc, call_id: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
    global edge_url, token, edge_cert
    if method in ("inlet", "outlet", "stream"):
        fn = _filters.get(method)
        key = "event" if method == "stream" else "body"
        value = params[key]
        if fn is None:
            return {key: value}
        user = (_user(params),) if fn.__eldric_user__ else ()  # type: ignore[attr-defined]
        out = await _call(fn, value, *user)
        if out is None and method != "stream":
            out = value  # an inlet/outlet that edits in place and returns nothing
        return {key: out}
    if method == "tool":
        found = _tools.get(params["name"])
        if found is None:
            raise _NoMethod(f"no tool {params['name']!r}")
        fn = found[1]
        kwargs = dict(params.get("arguments") or {})
        if "user" in inspect.signature(fn).parameters:
            kwargs["user"] = _user(params)
        return {"content": await _text(rpc, call_id, fn, **kwargs)}
    if method == "pipe":
        answer = _pipes.get(params["model"])
        if answer is None:
            raise _NoMethod(f"no pipe model {params['model']!r}")
        return {"content": await _text(rpc, call_id, answer[1], params["body"], _user(params))}
    if method == "initialize":
        manifest.clear()
        manifest.update(params.get("manifest") or {})
        edge_url = params.get("edge_url") or ""
        token = params.get("token") or ""
        edge_cert = params.get("edge_cert") or ""
        _set_valves(params.get("valves") or {})
        return {"tools": [spec for spec, _ in _tools.values()],
                "models": [{"id": pid, "name": name} for pid, (name, _) in _pipes.items()],
                # which filter hooks exist: the edge calls no hook the plugin lacks
                "hooks": sorted(_filters)}
    if method == "valves":
        _set_valves(params["valves"])
        return {}
    raise _NoMethod(f"unknown method {method!r}")


def edge_ssl() -> ssl.SSLContext | None:
    """The TLS context to call `edge_url` with: None when the edge serves plain HTTP.

    edge_url names the edge on loopback (https://127.0.0.1:PORT), which its certificate
    need not cover (it names the public host), so the name is not checked; trust is
    pinned instead to the edge's own certificate, the one initialize sent: only that
    certificate is accepted, not anything a public CA signed."""
    if not edge_url.startswith("https:"):
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # before verify_mode: the pin is the check
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the leaf itself is the anchor
    if edge_cert:
        ctx.load_verify_locations(cadata=edge_cert)
    return ctx


def _set_valves(new: dict[str, Any]) -> None:
    # Mutate in place: handlers that did `from eldric.plugin import valves` see the change.
    valves.clear()
    valves.update(new)


async def _serve(rpc: _Rpc) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:  # the edge closed our stdin: it is stopping us; a moment to finish
            if rpc.calls:
                await asyncio.wait(list(rpc.calls.values()), timeout=1.0)
            return
        msg: Any = None
        try:
            msg = _loads(line)
            method = msg["method"]
            params = msg.get("params") or {}
            if not isinstance(method, str) or not isinstance(params, dict):
                raise ValueError("method must be a string and params an object")
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # DecodeError too
            rpc.error(msg.get("id") if isinstance(msg, dict) else None,
                      PARSE_ERROR, f"bad request line: {e}")
            continue
        if "id" not in msg:  # a notification
            if method == "cancel":
                task = rpc.calls.get(params.get("call"))
                if task is not None:
                    task.cancel()
            continue
        call_id = msg["id"]
        if method in ("initialize", "inlet", "outlet", "stream", "valves"):
            await rpc.handle(call_id, method, params)  # quick and in order
        else:
            rpc.calls[call_id] = loop.create_task(rpc.handle(call_id, method, params))


def run() -> None:
    """Serve the edge until it closes stdin. Call it last, after the decorators."""
    global _wire
    if _wire is None:  # run by hand, not by the edge
        _wire = sys.stdout.buffer
        sys.stdout = sys.stderr  # print() from a handler is a log line, not a corrupt reply
    out = _wire
    try:
        asyncio.run(_serve(_Rpc(out)))
    except KeyboardInterrupt:
        pass
    sys.stderr.flush()
    os._exit(0)  # a tool thread still stuck in a call must not keep the child alive
