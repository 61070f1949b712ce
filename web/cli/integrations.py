"""`approvals mcp-gateway`: any MCP client's tool calls, gated behind a person's approval."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any


def add_commands(commands: Any) -> None:
    gateway = commands.add_parser(
        "mcp-gateway",
        help="an MCP server fronting another, whose gated tool calls wait for a person's approval",
        description=(
            "Serve an MCP server (stdio, or streamable HTTP at /mcp) that forwards an upstream MCP server's tools. "
            "Calls of gated tools become approval requests with their exact arguments: they return the upstream "
            "result once approved (with the reviewer's edits), or a tool error with the reason. Also offers a "
            "request_approval tool. Requests go to REDIS_URL (or the embedded store)."
        ),
    )
    upstream = gateway.add_mutually_exclusive_group(required=True)
    upstream.add_argument("--upstream-command", metavar="CMD", help='start the upstream over stdio: "python server.py"')
    upstream.add_argument("--upstream-url", metavar="URL", help="an upstream served over streamable HTTP")
    gateway.add_argument(
        "--gate", action="append", metavar="PATTERN",
        help="tool names whose calls need approval (fnmatch, repeatable; default: every tool); --gate '' gates none",
    )  # fmt: skip
    gateway.add_argument("--queue", default="mcp", help="the queue requests go to (default mcp)")
    gateway.add_argument(
        "--timeout", type=float, help="seconds reviewers have to decide (default APPROVALS_DEFAULT_TIMEOUT)"
    )
    gateway.add_argument("--no-ask-tool", action="store_true", help="do not offer the request_approval tool")
    gateway.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="how clients connect")
    gateway.add_argument("--host", default="127.0.0.1", help="address for --transport http (default 127.0.0.1)")
    gateway.add_argument("--port", type=int, default=8765, help="port for --transport http (default 8765)")
    gateway.set_defaults(run=_gateway)


def _gateway(args: argparse.Namespace) -> int:
    from approvals.integrations.mcp import Gateway, GatewayConfig, serve_http, serve_stdio

    patterns = ["*"] if args.gate is None else [p for p in args.gate if p]
    if args.upstream_command:
        upstream: Any = GatewayConfig.command(args.upstream_command, env=os.environ)  # the upstream's keys, paths
    else:
        upstream = args.upstream_url
    config = GatewayConfig(
        upstream, gate=patterns, queue=args.queue, timeout=args.timeout, ask_tool=not args.no_ask_tool
    )
    gateway = Gateway(config)
    serving = serve_stdio(gateway) if args.transport == "stdio" else serve_http(gateway, args.host, args.port)
    try:
        asyncio.run(serving)
    except KeyboardInterrupt:
        return 130
    return 0
