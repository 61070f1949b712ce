"""An upstream MCP server for the gateway's tests (the official SDK's MCPServer, over stdio).

Each call of a tool that changes something is appended to the file named by UPSTREAM_LOG, so a test
can see what ran, and with which arguments.
"""

from __future__ import annotations

import os

from mcp.server import MCPServer

server = MCPServer("files", version="1", log_level="WARNING")


def _did(what: str) -> None:
    with open(os.environ["UPSTREAM_LOG"], "a", encoding="utf-8") as log:
        log.write(what + "\n")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def delete_file(path: str) -> str:
    """Delete a file."""
    _did(f"delete {path}")
    return f"deleted {path}"


@server.tool()
def read_file(path: str) -> str:
    """Read a file."""
    return f"contents of {path}"


if __name__ == "__main__":
    server.run()
