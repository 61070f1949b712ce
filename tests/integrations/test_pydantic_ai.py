"""Pydantic AI (from PyPI) with deferred tools: a scripted FunctionModel, a real Redis, and decisions made
through the store while the run waits; then a run paused in one process and finished in another."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import Agent, ApprovalRequired, DeferredToolRequests, RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from redis.asyncio import Redis

from approvals import ApprovalClient, ApprovalRequest, ApprovalStore, Settings, Status
from approvals.integrations.pydantic_ai import resume_with_approvals, run_with_approvals

ROOT = Path(__file__).resolve().parents[2]
DONE: list[str] = []


def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Ask to delete two files and to email, then report what each tool returned."""
    returns = [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
    if not returns:
        return ModelResponse(
            parts=[
                ToolCallPart("delete_file", {"path": "/tmp/a"}, tool_call_id="call_a"),
                ToolCallPart("delete_file", {"path": "/tmp/b"}, tool_call_id="call_b"),
                ToolCallPart("send_email", {"to": "boss@example.com"}, tool_call_id="call_c"),
            ]
        )
    return ModelResponse(parts=[TextPart(" | ".join(f"{r.tool_call_id}={r.content}" for r in returns))])


def make_agent() -> Agent[None, str | DeferredToolRequests]:
    agent: Agent[None, str | DeferredToolRequests] = Agent(
        FunctionModel(script), output_type=[str, DeferredToolRequests], name="janitor"
    )

    @agent.tool_plain(requires_approval=True)
    def delete_file(path: str) -> str:
        """Delete a file."""
        DONE.append(f"delete {path}")
        return f"deleted {path}"

    @agent.tool
    def send_email(ctx: RunContext[None], to: str) -> str:
        """Send an email; outside the company it needs approval."""
        if not ctx.tool_call_approved and not to.endswith("@mycorp.com"):
            raise ApprovalRequired(metadata={"why": "external recipient"})
        DONE.append(f"email {to}")
        return f"sent to {to}"

    return agent


@pytest.fixture
async def store(settings: Settings, redis_url: str) -> AsyncIterator[ApprovalStore]:
    redis = Redis.from_url(redis_url, decode_responses=True, client_name="test-reviewers")
    yield ApprovalStore(redis, settings)
    await redis.aclose()


@pytest.fixture(autouse=True)
def _nothing_done_yet() -> None:
    DONE.clear()


async def pending(store: ApprovalStore, count: int, timeout: float = 15.0) -> dict[str, ApprovalRequest]:
    async with asyncio.timeout(timeout):
        while len(found := (await store.list_pending(limit=200)).items) < count:
            await asyncio.sleep(0.02)
    return {r.context["call_id"]: r for r in found}


async def test_deferred_calls_become_requests_and_decisions_the_next_runs_results(
    store: ApprovalStore, client: ApprovalClient
) -> None:
    running = asyncio.ensure_future(
        run_with_approvals(make_agent(), "clean up", run_id="cleanup-1", client=client, queue="files")
    )
    asked = await pending(store, 3)
    assert {(r.action, str(r.args)) for r in asked.values()} == {
        ("delete_file", "{'path': '/tmp/a'}"),
        ("delete_file", "{'path': '/tmp/b'}"),
        ("send_email", "{'to': 'boss@example.com'}"),
    }
    first = asked["call_a"]
    assert (first.queue, first.agent_id, first.run_id, first.context["framework"]) == (
        "files",
        "janitor",
        "cleanup-1",
        "pydantic-ai",
    )
    assert first.args_schema["required"] == ["path"] and asked["call_c"].context["metadata"] == {
        "why": "external recipient"
    }
    assert DONE == [] and not running.done()

    await store.approve(asked["call_a"].id, by="rita")
    await store.reject(asked["call_b"].id, by="rita", reason="b is still in use")
    await store.approve(asked["call_c"].id, by="rita", edited_args={"to": "cfo@example.com"})
    result = await asyncio.wait_for(running, 15)
    assert result.output == (
        "call_a=deleted /tmp/a | "
        "call_b=A person did not approve this delete_file call (rejected): b is still in use | "
        "call_c=sent to cfo@example.com"
    )
    assert sorted(DONE) == ["delete /tmp/a", "email cfo@example.com"]


PAUSE = """
import asyncio, sys
sys.path.insert(0, {root!r})
from approvals import ApprovalClient, Settings
from approvals.integrations.pydantic_ai import run_with_approvals
from tests.integrations.test_pydantic_ai import make_agent

async def main():
    async with ApprovalClient(Settings(redis_url={url!r}, prefix={prefix!r})) as client:
        await run_with_approvals(make_agent(), "clean up", run_id="cleanup-2", client=client)

asyncio.run(main())
"""


async def test_a_run_paused_in_a_process_that_died_is_finished_in_another(
    store: ApprovalStore, client: ApprovalClient, settings: Settings, redis_url: str
) -> None:
    code = PAUSE.format(root=str(ROOT), url=redis_url, prefix=settings.prefix)
    first = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    try:
        asked = await pending(store, 3)
    finally:
        first.kill()  # the process that asked dies while its run waits
        await first.wait()
    for request in asked.values():
        assert (await store.get(request.id)).status is Status.PENDING  # kept: a resumed run attaches to them
        await store.approve(request.id, by="rita")
    result = await asyncio.wait_for(resume_with_approvals(make_agent(), "cleanup-2", client=client), 15)
    assert result.output == "call_a=deleted /tmp/a | call_b=deleted /tmp/b | call_c=sent to boss@example.com"
    assert (await store.list_decided(limit=10)).total == 3  # asked once each, across both processes
    with pytest.raises(LookupError, match="no paused Pydantic AI run"):
        await resume_with_approvals(make_agent(), "cleanup-2", client=client)  # finished: forgotten


async def test_external_deferred_calls_are_refused_with_what_to_do(client: ApprovalClient) -> None:
    from pydantic_ai import CallDeferred

    agent: Agent[None, Any] = Agent(FunctionModel(script), output_type=[str, DeferredToolRequests])

    @agent.tool_plain
    def delete_file(path: str) -> str:
        raise CallDeferred

    @agent.tool_plain
    def send_email(to: str) -> str:
        raise CallDeferred

    with pytest.raises(ValueError, match="external result, not an approval: delete_file, send_email"):
        await run_with_approvals(agent, "clean up", client=client)
