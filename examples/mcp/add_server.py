"""An MCP server for examples/edge-mcp.json: the mcp SDK's quick-start server (one tool,
`add`), run by the edge as its stdio child. Needs `pip install 'eldric[mcp]'` (the SDK)
in the Python that runs it."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("Demo")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


if __name__ == "__main__":
    server.run()  # stdio: the edge speaks MCP on this process's stdin/stdout
