"""The MCP gateway with the official SDK (from PyPI) on both sides: an upstream MCP server started by the
test, the SDK's client, a real Redis, and decisions made through the store while the call waits."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from redis.asyncio import Redis

from approvals import ApprovalRequest, ApprovalStore, Settings, Status
from approvals.integrations.mcp import ASK_TOOL, Gateway, GatewayConfig, serve_http
from tests.redis_server import free_port

UPSTREAM = Path(__file__).with_name("mcp_upstream.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """What the upstream server did, one line per call that changed something."""
    path = tmp_path / "upstream.log"
    path.write_text("")
    return path


@pytest.fixture
async def store(settings: Settings, redis_url: str) -> AsyncIterator[ApprovalStore]:
    """The reviewers' side, on connections of its own name (not the gateway's)."""
    redis = Redis.from_url(redis_url, decode_responses=True, client_name="test-reviewers")
    yield ApprovalStore(redis, settings)
    await redis.aclose()


def upstream(log: Path) -> StdioServerParameters:
    env = {"UPSTREAM_LOG": str(log), "PYTHONPATH": str(ROOT)}
    return StdioServerParameters(command=sys.executable, args=[str(UPSTREAM)], env=env)


async def pending(store: ApprovalStore, count: int = 1, timeout: float = 20.0) -> list[ApprovalRequest]:
    async with asyncio.timeout(timeout):
        while len(found := (await store.list_pending(limit=200)).items) < count:
            await asyncio.sleep(0.02)
    return found


def did(log: Path) -> str:
    """What the upstream server did so far (a small local file: read at once)."""
    return log.read_text()


def text(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def test_gated_calls_wait_for_a_person_and_run_with_the_approved_arguments(
    store: ApprovalStore, settings: Settings, log: Path
) -> None:
    gateway = Gateway(GatewayConfig(upstream(log), gate=["delete_*"], queue="files", settings=settings))
    async with Client(gateway.server, client_info=types.Implementation(name="desk", version="1")) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {"add", "delete_file", "read_file", ASK_TOOL}
        assert "approval" in (tools["delete_file"].description or "") and "approval" not in (
            tools["add"].description or ""
        )

        assert (await client.call_tool("add", {"a": 2, "b": 3})).structured_content == {"result": 5}  # not gated
        assert (await store.list_pending()).total == 0

        calling = asyncio.ensure_future(client.call_tool("delete_file", {"path": "/srv/a.txt"}))
        [asked] = await pending(store)
        assert (asked.action, asked.args, asked.queue) == ("delete_file", {"path": "/srv/a.txt"}, "files")
        assert asked.context["framework"] == "mcp" and asked.agent_id == "mcp:desk"
        assert asked.args_schema["required"] == ["path"]
        assert did(log) == "" and not calling.done()  # nothing ran before the decision
        await store.approve(asked.id, by="rita", edited_args={"path": "/srv/b.txt"})
        result = await asyncio.wait_for(calling, 10)
        assert (result.is_error, text(result)) == (False, "deleted /srv/b.txt")  # as the reviewer edited it

        calling = asyncio.ensure_future(client.call_tool("delete_file", {"path": "/etc/passwd"}))
        [asked] = await pending(store)
        await store.reject(asked.id, by="rita", reason="never system files")
        refused = await asyncio.wait_for(calling, 10)
        assert refused.is_error and "did not approve this delete_file call (rejected): never system files" in text(
            refused
        )
        assert did(log) == "delete /srv/b.txt\n"


async def test_the_explicit_ask_tool_and_bad_arguments(store: ApprovalStore, settings: Settings, log: Path) -> None:
    gateway = Gateway(GatewayConfig(upstream(log), gate=[], settings=settings))  # nothing gated: only asks
    async with Client(gateway.server) as client:
        missing = await client.call_tool(ASK_TOOL, {"details": {}})
        assert missing.is_error and "needs an 'action'" in text(missing)
        asking = asyncio.ensure_future(
            client.call_tool(ASK_TOOL, {"action": "rotate the API keys", "details": {"service": "billing"}})
        )
        [asked] = await pending(store)
        assert asked.args == {"action": "rotate the API keys", "details": {"service": "billing"}}
        await store.approve(asked.id, by="root")
        answer = await asyncio.wait_for(asking, 10)
        assert answer.structured_content is not None
        assert (answer.structured_content["approved"], answer.structured_content["decided_by"]) == (True, "root")
        assert text(answer) == "approved: rotate the API keys"
        assert (await client.call_tool("delete_file", {"path": "x"})).structured_content == {"result": "deleted x"}


async def test_many_waiting_calls_share_one_pubsub_connection(
    store: ApprovalStore, settings: Settings, log: Path
) -> None:
    gateway = Gateway(GatewayConfig(upstream(log), gate=["delete_*"], settings=settings))
    async with Client(gateway.server) as client:
        calls = [asyncio.ensure_future(client.call_tool("delete_file", {"path": f"/tmp/{n}"})) for n in range(15)]
        requests = await pending(store, 15)
        names = [c["name"] for c in await store.redis.client_list() if c["name"].startswith("approvals:sub:")]
        assert len(names) == 1
        for request in requests:
            await store.approve(request.id, by="rita")
        results = await asyncio.wait_for(asyncio.gather(*calls), 15)
        assert sorted(text(r) for r in results) == sorted(f"deleted /tmp/{n}" for n in range(15))


async def test_the_cli_gateway_over_stdio_and_a_client_that_gives_up(
    store: ApprovalStore, settings: Settings, redis_url: str, log: Path
) -> None:
    env = {
        "REDIS_URL": redis_url,
        "APPROVALS_PREFIX": settings.prefix,
        "PYTHONPATH": str(ROOT),
        "UPSTREAM_LOG": str(log),
    }
    command = f"{sys.executable} {UPSTREAM}"
    cli = [sys.executable, "-m", "web.cli", "mcp-gateway", "--upstream-command", command, "--gate", "delete_*"]
    params = StdioServerParameters(command=cli[0], args=cli[1:], env=env)
    async with Client(params) as client:
        calling = asyncio.ensure_future(client.call_tool("delete_file", {"path": "/var/x"}))
        [asked] = await pending(store)
        assert asked.queue == "mcp"
        await store.approve(asked.id, by="rita")
        assert text(await asyncio.wait_for(calling, 10)) == "deleted /var/x"

        with pytest.raises(MCPError):  # this client stops waiting after a second ...
            await client.call_tool("delete_file", {"path": "/var/y"}, read_timeout_seconds=1)
        given_up = await _ended(store, {"path": "/var/y"})
        assert given_up.status is Status.WITHDRAWN  # ... so nobody is asked to approve what nobody waits for
    assert did(log) == "delete /var/x\n"


async def _ended(store: ApprovalStore, args: dict[str, Any]) -> ApprovalRequest:
    async with asyncio.timeout(10):
        while True:
            for request in (await store.list_decided(limit=10)).items:
                if request.args == args:
                    return request
            await asyncio.sleep(0.05)


async def test_the_gateway_over_streamable_http(store: ApprovalStore, settings: Settings, log: Path) -> None:
    port = free_port()
    serving = asyncio.ensure_future(
        serve_http(Gateway(GatewayConfig(upstream(log), gate=["delete_*"], settings=settings)), port=port)
    )
    try:
        async with asyncio.timeout(20):
            while True:
                try:
                    client = Client(f"http://127.0.0.1:{port}/mcp")
                    await client.__aenter__()
                    break
                except Exception:  # not listening yet
                    await asyncio.sleep(0.1)
        try:
            assert (await client.call_tool("add", {"a": 40, "b": 2})).structured_content == {"result": 42}
            calling = asyncio.ensure_future(client.call_tool("delete_file", {"path": "/http/a"}))
            [asked] = await pending(store)
            await store.approve(asked.id, by="rita")
            assert text(await asyncio.wait_for(calling, 10)) == "deleted /http/a"
        finally:
            await client.__aexit__(None, None, None)
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
