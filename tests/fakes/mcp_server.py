"""An MCP server written with the mcp SDK's MCPServer (FastMCP in 1.x), for the edge's
MCP tool tests: `python -m tests.fakes.mcp_server [stdio | http PORT]`.

Tools: add (a text result), slow (sleeps: deadlines), crash (the process exits
mid-call: a server crashing), fail (an isError result), picture (an image and resources, no text), grow (adds `double` and sends
notifications/tools/list_changed)."""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("eldric-test-mcp")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> str:
    return str(a + b)


@server.tool(description="Sleep, then answer.")
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


@server.tool(description="A picture and a resource, no text.")
def picture() -> list:
    from mcp.types import BlobResourceContents, EmbeddedResource, ImageContent, TextResourceContents

    return [ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png"),
            EmbeddedResource(type="resource", resource=TextResourceContents(
                uri="file:///notes.txt", mime_type="text/plain", text="the notes")),
            EmbeddedResource(type="resource", resource=BlobResourceContents(
                uri="file:///data.bin", mime_type="application/octet-stream", blob="AAAA"))]


@server.tool(description="Exit the server mid-call.")
def crash() -> str:
    os._exit(3)


@server.tool(description="A tool that reports an error.")
def fail() -> str:
    raise ValueError("the tool refused")


def double(x: int) -> str:
    return str(2 * x)


@server.tool(description="Add the tool `double`, and tell the client its tools changed.")
async def grow(ctx: Context) -> str:
    server.add_tool(double, description="Double an integer.")
    await ctx.session.send_tool_list_changed()
    return "grown"


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
