"""One MCP server of the edge's `mcp_servers` (file section of "edge"; no flag: a list
of objects is a file's business). Kept apart from mcp.py so that reading the config
never imports the mcp SDK (the optional extra `eldric[mcp]`)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec


class McpServerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    transport: Literal["stdio", "http"] = "stdio"
    command: str = ""  # stdio: the executable, its args, env (over the SDK's safe default), cwd
    args: list[str] = []
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str = ""  # http: the streamable HTTP endpoint, and headers sent with every request
    headers: dict[str, str] = {}
    models: list[str] = msgspec.field(default_factory=lambda: ["*"])  # globs of the models its tools are offered to
    offer: Literal["always", "request"] = "request"  # as a tool plugin's manifest offer
    deadline_ms: Annotated[int, msgspec.Meta(ge=1)] = 10_000  # per call
    fail_mode: Literal["open", "closed"] = "open"  # closed: a failed call is the client's 502
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.transport == "stdio" and not self.command:
            raise ValueError(f"MCP server {self.name}: transport stdio needs a command")
        if self.transport == "http" and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"MCP server {self.name}: transport http needs an http(s) url")
