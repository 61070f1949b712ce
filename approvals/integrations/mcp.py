"""An MCP gateway: any MCP client's tool calls, gated behind a person's approval.

`approvals mcp-gateway --upstream-command "python my_server.py" --gate "delete_*"` is an MCP server
(stdio, or streamable HTTP with `--transport http`) that fronts an upstream MCP server and forwards
its tools. A call to a gated tool becomes an approval request carrying its exact arguments; the call
returns the upstream result once a person approves (with their edits, if any), or an MCP tool error
with the reviewer's reason. The gateway also offers a `request_approval` tool for agents that want to
ask explicitly. Every waiting call is a coroutine on one `ApprovalClient`: the gateway holds one
Pub/Sub connection for all of them, however many clients and calls wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import shlex
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client import ApprovalClient
from ..errors import ApprovalError
from ..models import Decision
from ..schema import safe_subset
from ..settings import Settings
from . import require

require("mcp", "mcp")
import mcp_types as types  # noqa: E402  (after the check that says which extra to install)
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.server import Server, ServerRequestContext  # noqa: E402
from mcp.server.stdio import stdio_server  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

__all__ = ["ASK_TOOL", "Gateway", "GatewayConfig", "serve_http", "serve_stdio"]

FRAMEWORK = "mcp"
ASK_TOOL = "request_approval"
PROGRESS_EVERY = 10.0  # seconds between "still waiting" progress notices to a client that asked for them
IDEMPOTENCY_META = "approvals/idempotency_key"  # a call's _meta key naming it, so a retried call reattaches

ASK_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "description": "The exact action you want to take, with its details"},
        "details": {"type": "object", "description": "Optional: the action's parameters, for the reviewer"},
        "idempotency_key": {"type": "string", "description": "Optional: the same key asks once, across retries"},
    },
    "required": ["action"],
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """What the gateway fronts and which of its tools need a person's approval."""

    upstream: str | StdioServerParameters  # an MCP server's streamable-HTTP URL, or a command to start
    gate: Sequence[str] = ("*",)  # tool-name patterns (fnmatch) whose calls need approval; () gates none
    queue: str | None = "mcp"
    timeout: float | None = None  # the request's deadline for reviewers (None: the client's default)
    ask_tool: bool = True  # offer `request_approval` too
    name: str = "approvals-gateway"
    settings: Settings = field(default_factory=Settings.from_env)

    @staticmethod
    def command(command_line: str, env: Mapping[str, str] | None = None) -> StdioServerParameters:
        """An upstream started from a command line such as "python server.py --flag"."""
        program, *args = shlex.split(command_line)
        return StdioServerParameters(command=program, args=args, env=dict(env) if env else None)

    def gated(self, tool: str) -> bool:
        return any(fnmatch.fnmatchcase(tool, pattern) for pattern in self.gate)


class Gateway:
    """The MCP server: upstream tools forwarded, the gated ones asked for first."""

    def __init__(self, config: GatewayConfig, client: ApprovalClient | None = None) -> None:
        self.config = config
        self._client = client
        self._upstream: Client | None = None
        self._schemas: dict[str, Mapping[str, Any]] = {}  # upstream tools' input schemas, by name
        self.server: Server[Any] = Server(
            config.name,
            version="1",
            instructions="Some tools wait for a person's approval before they run; the wait can be long.",
            lifespan=self._lifespan,
            get_tool_input_schema=self._schemas.get,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        own = self._client is None
        client = self._client or ApprovalClient(self.config.settings, requested_by=self.config.name)
        async with Client(self.config.upstream, mode="legacy") as upstream:
            if own:
                await client.start()
            self._client, self._upstream = client, upstream
            try:
                yield {}
            finally:
                if own:
                    await client.aclose()
                    self._client = None
                self._upstream = None

    @property
    def upstream(self) -> Client:
        if self._upstream is None:
            raise MCPError(-32603, "the gateway is not connected to its upstream server")
        return self._upstream

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        listed = await self.upstream.list_tools(cursor=params.cursor if params else None, cache_mode="refresh")
        tools = []
        note = " (Each call waits for a person's approval of its exact arguments; the wait can be long.)"
        for tool in listed.tools:
            self._schemas[tool.name] = tool.input_schema
            gated = self.config.gated(tool.name)
            tools.append(tool.model_copy(update={"description": (tool.description or "") + note}) if gated else tool)
        if self.config.ask_tool and (params is None or params.cursor is None):
            tools.append(
                types.Tool(
                    name=ASK_TOOL,
                    description=(
                        "Ask a human reviewer to approve an action before you take it. Returns whether it was "
                        "approved (possibly with changes: do the changed action) or rejected, with the reason."
                    ),
                    input_schema=ASK_TOOL_SCHEMA,
                )
            )
            self._schemas[ASK_TOOL] = ASK_TOOL_SCHEMA
        return types.ListToolsResult(tools=tools, next_cursor=listed.next_cursor)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        if self.config.ask_tool and params.name == ASK_TOOL:
            return await self._explicit_ask(ctx, arguments)
        if not self.config.gated(params.name):
            return await self._forward(params.name, arguments)
        if params.name not in self._schemas:  # a client that calls without listing first
            await self._list_tools(ctx, None)
        if params.name not in self._schemas:
            return _error(f"Unknown tool: {params.name}")
        try:
            decision = await self._ask(ctx, params.name, arguments, self._schemas[params.name], _meta_key(ctx))
        except ApprovalError as error:
            return _error(f"The approval request was refused: {error}")
        if not decision.approved:
            return _error(f"A person did not approve this {params.name} call ({decision.status.value}): "
                          f"{decision.reason or 'no reason given'}")  # fmt: skip
        return await self._forward(params.name, dict(decision.args))

    async def _explicit_ask(
        self, ctx: ServerRequestContext[Any, Any], arguments: dict[str, Any]
    ) -> types.CallToolResult:
        action = arguments.get("action")
        if not isinstance(action, str) or not action.strip():
            return _error("request_approval needs an 'action': the exact action you want to take")
        details = arguments.get("details")
        args = {"action": action} | ({"details": details} if isinstance(details, dict) else {})
        key = arguments.get("idempotency_key")
        try:
            decision = await self._ask(ctx, action, args, None, key if isinstance(key, str) else _meta_key(ctx))
        except ApprovalError as error:
            return _error(f"The approval request was refused: {error}")
        outcome = {
            "approved": decision.approved,
            "status": decision.status.value,
            "decided_by": decision.decided_by,
            "reason": decision.reason,
            "args": dict(decision.args),
        }
        if not decision.approved:
            said = f"rejected: {decision.reason or decision.status.value}"
        elif decision.edited:
            said = f"approved with changes: {decision.args.get('action', action)} ({dict(decision.args)})"
        else:
            said = f"approved: {action}"
        return types.CallToolResult(content=[types.TextContent(text=said)], structured_content=outcome)

    async def _ask(
        self,
        ctx: ServerRequestContext[Any, Any],
        action: str,
        args: Mapping[str, Any],
        schema: Mapping[str, Any] | None,
        key: str | None,
    ) -> Decision:
        """Ask and wait, telling a client that asked for progress every few seconds that it still waits."""
        assert self._client is not None
        caller = _client_name(ctx)
        asking = asyncio.ensure_future(
            self._client.request_approval(
                action,
                args,
                queue=self.config.queue,
                timeout=self.config.timeout,
                agent_id=caller,
                context={"framework": FRAMEWORK, "agent": caller, "gateway": self.config.name, "tool": action},
                args_schema=safe_subset(dict(schema)) if schema else None,
                idempotency_key=key,
                idempotency_scope=f"{FRAMEWORK}:{caller}" if key else None,
            )
        )
        waited = 0.0
        try:
            while True:
                done, _ = await asyncio.wait({asking}, timeout=PROGRESS_EVERY)
                if done:
                    return asking.result()
                waited += PROGRESS_EVERY
                await ctx.session.report_progress(waited, None, f"waiting for a person's approval of {action}")
        finally:
            if not asking.done():  # the client gave up (cancelled): the request is withdrawn
                asking.cancel()
                with contextlib.suppress(asyncio.CancelledError, ApprovalError):
                    await asking

    async def _forward(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        try:
            return await self.upstream.call_tool(name, arguments)
        except MCPError as error:
            return _error(f"The upstream server failed: {error.message}")


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


def _client_name(ctx: ServerRequestContext[Any, Any]) -> str:
    params = getattr(ctx.session, "client_params", None)
    info = getattr(params, "client_info", None)
    name = getattr(info, "name", None)
    return f"mcp:{name}" if isinstance(name, str) and name else "mcp-client"


def _meta_key(ctx: ServerRequestContext[Any, Any]) -> str | None:
    meta = ctx.meta
    value = meta.get(IDEMPOTENCY_META) if isinstance(meta, Mapping) else getattr(meta, IDEMPOTENCY_META, None)
    return value if isinstance(value, str) and value else None


async def serve_stdio(gateway: Gateway) -> None:
    """Serve the gateway on this process's stdin and stdout (how desktop MCP clients start servers)."""
    async with stdio_server() as (read, write):
        await gateway.server.run(read, write, gateway.server.create_initialization_options())


async def serve_http(gateway: Gateway, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the gateway over streamable HTTP at http://host:port/mcp until cancelled."""
    import uvicorn

    app = gateway.server.streamable_http_app(host=host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    serving = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:  # stop as uvicorn does on a signal: waiting calls end, the client closes
        server.should_exit = True
        await serving
        raise
