"""MCP servers as tools in the edge's tool loop: one McpServer per configured server.

It stands where a tool plugin's PluginProcess stands for tools.Owner (`info["tools"]`
the OpenAI function specs, `call("tool", {...})` -> {"content": text}, failures raised
as PluginError kinds), so the loop, its per-call deadline and its `error: …` results
are the plugin tools' own. The `mcp` SDK is the client (stdio_client or
streamable_http_client, ClientSession): no MCP protocol code here.

The SDK is anyio: its session and transport are context managers that must be entered
and left in one task. So each server has one supervisor task holding them open; calls
from request tasks go through the session (anyio on asyncio: safe across tasks of one
loop); when the session ends (the child crashed, the HTTP server went away) the
supervisor restarts it with backoff. A stdio child is the SDK's, killed when its context
is left (edge stop cancels the supervisor).

Offered as tool plugins are (answer.py): the servers whose `models` globs match the
request's model and whose `offer` allows it; X-Eldric-Tools names a server (its name)
or a tool, as it names a plugin id or a tool.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from eldric.roles.edge.plugins.mcp_config import McpServerConfig
from eldric.roles.edge.plugins.process import PluginBadReply, PluginDown, PluginError, PluginTimeout

log = structlog.get_logger("eldric.edge.mcp")
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
PING_S = 5.0  # how often an idle session is checked
PING_TIMEOUT_S = 2.0


def spec(tool: Any) -> dict[str, Any]:
    """An MCP Tool as an OpenAI function spec (its inputSchema is already JSON Schema)."""
    schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
    fn: dict[str, Any] = {"name": tool.name,
                          "parameters": schema or {"type": "object", "properties": {}}}
    if tool.description:
        fn["description"] = tool.description
    return {"type": "function", "function": fn}


def text_of(result: Any) -> str:
    """A CallToolResult as the tool message's text: its text parts, else its structured
    content as JSON; isError said as `error: …` (the model is told, as for plugins)."""
    import json

    text = "\n".join(filter(None, map(_part, result.content or ())))
    if not text and result.structured_content is not None:
        text = json.dumps(result.structured_content)
    return f"error: {text}" if result.is_error else text


def _part(c: Any) -> str:
    """One content part as text: a chat model's tool message holds text only, so an
    image, audio or blob is named (not dropped: the model knows one came back), a text
    resource gives its text, a resource link its uri."""
    kind = getattr(c, "type", "")
    if kind == "text":
        return str(c.text)
    if kind in ("image", "audio"):
        return f"[{kind}: {c.mime_type}, {len(c.data) * 3 // 4} bytes, not shown]"
    if kind == "resource":
        r = c.resource
        text = getattr(r, "text", None)
        return text if isinstance(text, str) else f"[resource {r.uri}: {r.mime_type}, not shown]"
    if kind == "resource_link":
        return f"[resource link: {c.uri}]"
    return ""


class McpServer:
    def __init__(self, cfg: McpServerConfig) -> None:
        self.cfg = cfg
        self.id = cfg.name
        self.fail_closed = cfg.fail_mode == "closed"  # tools.Loop asks
        self.applies_to = cfg.models
        self.offer = cfg.offer
        self.info: dict[str, Any] = {"tools": []}
        self.state = "stopped"  # stopped | starting | ready | down
        self.last_error: str | None = None
        self.restarts = 0
        self._session: Any = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()  # set when the transport breaks: restart

    @property
    def running(self) -> bool:
        return self._session is not None

    def status(self) -> dict[str, Any]:
        return {"id": self.id, "type": "mcp", "transport": self.cfg.transport,
                "state": self.state, "error": self.last_error, "restarts": self.restarts,
                "tools": [t["function"]["name"] for t in self.info["tools"]]}

    def start_soon(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"mcp-{self.id}")

    async def start(self, wait_s: float | None = None) -> None:
        """Start (if not yet) and wait up to the deadline for the first tools list."""
        self.start_soon()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(),
                                   wait_s if wait_s is not None else self.cfg.deadline_ms / 1000)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.state = "stopped"

    def _transport(self) -> Any:
        if self.cfg.transport == "http":
            return self._http()
        from mcp.client.stdio import StdioServerParameters, stdio_client

        return stdio_client(StdioServerParameters(command=self.cfg.command,
                                                  args=list(self.cfg.args),
                                                  env=self.cfg.env, cwd=self.cfg.cwd))

    @contextlib.asynccontextmanager
    async def _http(self) -> Any:
        """Streamable HTTP on a client of our own, closed with the session (the SDK never
        closes one it is handed: each restart leaked a pool), with the SDK's own default
        timeouts (30 s, reads 300 s: a server may hold a stream open): a bare client's 5 s
        would cut a tool call long before its deadline_ms."""
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        timeout = httpx2.Timeout(30.0, read=300.0)
        async with httpx2.AsyncClient(headers=self.cfg.headers, timeout=timeout) as http:
            async with streamable_http_client(self.cfg.url, http_client=http) as streams:
                yield streams

    async def _supervise(self) -> None:
        from mcp.client.session import ClientSession

        failures = 0
        while True:
            self.state = "starting"
            try:
                async with self._transport() as streams:
                    read, write = streams[0], streams[1]
                    async with ClientSession(read, write,
                                             message_handler=self._on_message) as session:
                        await session.initialize()
                        self._session = session
                        await self._refresh()
                        self.state, failures = "ready", 0
                        self._ready.set()
                        await self._watch(session)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 — anyio ExceptionGroups too
                self.last_error = _why(exc)
                log.warning("mcp_server_down", server=self.id, error=self.last_error)
            finally:
                self._session = None
            self.state = "down"
            self._ended = asyncio.Event()
            await asyncio.sleep(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)])
            failures += 1
            self.restarts += 1

    async def _watch(self, session: Any) -> None:
        """Until the session breaks: a closed transport is not always reported to the
        message handler (a stdio child that exited), so a ping every PING_S finds out,
        and a failed call asks for one at once (_ended)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), PING_S)
            try:
                await asyncio.wait_for(session.send_ping(), PING_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 — any failure: the session is gone
                self.last_error = self.last_error or repr(exc)[:500]
                return
            self._ended.clear()

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):  # the transport broke: restart
            self.last_error = repr(message)[:500]
            self._ended.set()
            return
        method = getattr(getattr(message, "root", message), "method", None)
        if method == "notifications/tools/list_changed":
            asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        session = self._session
        if session is None:
            return
        listed = await session.list_tools()
        self.info = {"tools": [spec(t) for t in listed.tools]}

    async def call(self, method: str, params: dict[str, Any],
                   timeout_ms: int | None = None) -> dict[str, Any]:
        """A tool call, as PluginProcess.call("tool", …) answers it."""
        session = self._session
        if session is None:
            raise PluginDown(f"the MCP server {self.id} is not running ({self.last_error})")
        deadline = (timeout_ms or self.cfg.deadline_ms) / 1000
        try:
            result = await asyncio.wait_for(
                session.call_tool(params["name"], params.get("arguments") or {}), deadline)
        except TimeoutError:
            raise PluginTimeout(f"the MCP tool {params['name']} took over {deadline}s") from None
        except PluginError:
            raise
        except Exception as exc:  # noqa: BLE001 — a crash mid-call, an MCP error reply
            self.last_error = repr(exc)[:500]
            self._ended.set()  # the watcher pings now: a dead session is restarted
            raise PluginBadReply(f"the MCP server {self.id} failed: {exc!r}"[:500]) from None
        return {"content": text_of(result)}


def _why(exc: BaseException) -> str:
    """What went wrong, for the status and the log: the SDK's error inside the anyio
    ExceptionGroups its task groups wrap it in (their repr said nothing useful)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:500]
