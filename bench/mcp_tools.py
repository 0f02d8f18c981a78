"""The cost of one MCP tool call from the edge (plugins/mcp.McpServer, the mcp SDK's
client) to a real MCP server (tests/fakes/mcp_server.py) over stdio: p50/p99 µs of
`add`, sequential, under uvloop as the CLI runs. Prints figures; not a timed test.

    PYTHONPATH=. python bench/mcp_tools.py [calls]"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import uvloop

from eldric.roles.edge.plugins.mcp import McpServer
from eldric.roles.edge.plugins.mcp_config import McpServerConfig

ROOT = str(Path(__file__).resolve().parents[1])


async def main(n: int) -> None:
    s = McpServer(McpServerConfig(name="bench", command=sys.executable,
                                  args=["-m", "tests.fakes.mcp_server"], cwd=ROOT,
                                  env={"PYTHONPATH": ROOT}))
    t0 = time.perf_counter()
    await s.start(wait_s=30)
    print(f"start to ready: {(time.perf_counter() - t0) * 1000:.0f} ms ({s.state})")
    for _ in range(20):  # warm
        await s.call("tool", {"name": "add", "arguments": {"a": 1, "b": 2}})
    took = []
    for i in range(n):
        t = time.perf_counter()
        await s.call("tool", {"name": "add", "arguments": {"a": i, "b": 2}})
        took.append((time.perf_counter() - t) * 1e6)
    await s.stop()
    took.sort()
    print(f"{n} calls over stdio: p50 {statistics.median(took):.0f} µs, "
          f"p99 {took[int(n * 0.99) - 1]:.0f} µs")


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
