"""The OpenAI Agents SDK (from PyPI) with tools that need approval: a scripted model, a real Redis, and
decisions made through the store while the run waits; then a run paused in one process, finished in another."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, Model, ModelResponse, RunContextWrapper, Runner, Usage, function_tool, set_tracing_disabled
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
from redis.asyncio import Redis

from approvals import ApprovalClient, ApprovalRequest, ApprovalStore, Settings, Status
from approvals.integrations.openai_agents import decide_interruptions, resume_with_approvals, run_with_approvals

set_tracing_disabled(True)  # nothing is uploaded anywhere
ROOT = Path(__file__).resolve().parents[2]
DONE: list[str] = []


class Scripted(Model):
    """Asks to delete a file and to send an email, then reports what each tool call gave back."""

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:
        items = [] if isinstance(input, str) else input
        outputs = [i for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]
        if not outputs:
            calls = [
                ("call_a", "delete_file", {"path": "/tmp/a"}),
                ("call_b", "send_email", {"to": "boss@example.com"}),
            ]
            output: list[Any] = [
                ResponseFunctionToolCall(
                    type="function_call",
                    id=f"fc_{cid}",
                    call_id=cid,
                    name=name,
                    arguments=json.dumps(args),
                    status="completed",
                )
                for cid, name, args in calls
            ]
        else:
            said = " | ".join(f"{o['call_id']}={o['output']}" for o in outputs)
            output = [
                ResponseOutputMessage(
                    type="message",
                    id="msg_1",
                    role="assistant",
                    status="completed",
                    content=[ResponseOutputText(type="output_text", text=said, annotations=[])],
                )
            ]
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


@function_tool(needs_approval=True)
def delete_file(path: str) -> str:
    """Delete a file."""
    DONE.append(f"delete {path}")
    return f"deleted {path}"


async def _outside(ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str) -> bool:
    return not params["to"].endswith("@mycorp.com")


@function_tool(needs_approval=_outside)
def send_email(to: str) -> str:
    """Send an email."""
    DONE.append(f"email {to}")
    return f"sent to {to}"


def make_agent() -> Agent[Any]:
    return Agent(name="janitor", instructions="Tidy up.", model=Scripted(), tools=[delete_file, send_email])


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


async def test_interruptions_become_requests_and_the_run_resumes_with_the_decisions(
    store: ApprovalStore, client: ApprovalClient
) -> None:
    running = asyncio.ensure_future(
        run_with_approvals(make_agent(), "clean up", run_id="tidy-1", client=client, queue="files")
    )
    asked = await pending(store, 2)
    delete, email = asked["call_a"], asked["call_b"]
    assert (delete.action, delete.args, email.action, email.args) == (
        "delete_file",
        {"path": "/tmp/a"},
        "send_email",
        {"to": "boss@example.com"},
    )
    assert (delete.queue, delete.agent_id, delete.run_id, delete.context["framework"]) == (
        "files",
        "janitor",
        "tidy-1",
        "openai-agents",
    )
    assert delete.args_schema["required"] == ["path"] and DONE == [] and not running.done()

    await store.approve(delete.id, by="rita", edited_args={"path": "/tmp/a.bak"})
    await store.reject(email.id, by="rita", reason="not to the boss")
    result = await asyncio.wait_for(running, 15)
    assert result.final_output == (
        'call_a=(run with the arguments a person approved: {"path": "/tmp/a.bak"}) deleted /tmp/a.bak | '
        "call_b=A person did not approve this send_email call (rejected): not to the boss"
    )
    assert DONE == ["delete /tmp/a.bak"]  # run once, with the reviewer's edit


PAUSE = """
import asyncio, sys
sys.path.insert(0, {root!r})
from approvals import ApprovalClient, Settings
from approvals.integrations.openai_agents import run_with_approvals
from tests.integrations.test_openai_agents import make_agent

async def main():
    async with ApprovalClient(Settings(redis_url={url!r}, prefix={prefix!r})) as client:
        await run_with_approvals(make_agent(), "clean up", run_id="tidy-2", client=client)

asyncio.run(main())
"""


async def test_a_run_paused_in_a_process_that_died_is_finished_in_another(
    store: ApprovalStore, client: ApprovalClient, settings: Settings, redis_url: str
) -> None:
    code = PAUSE.format(root=str(ROOT), url=redis_url, prefix=settings.prefix)
    first = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    try:
        asked = await pending(store, 2)
    finally:
        first.kill()  # the process that asked dies while its run waits
        await first.wait()
    for request in asked.values():
        assert (await store.get(request.id)).status is Status.PENDING
        await store.approve(request.id, by="rita")
    result = await asyncio.wait_for(resume_with_approvals(make_agent(), "tidy-2", client=client), 15)
    assert result.final_output == "call_a=deleted /tmp/a | call_b=sent to boss@example.com"
    assert (await store.list_decided(limit=10)).total == 2  # asked once each, across both processes
    with pytest.raises(LookupError, match="no paused OpenAI Agents run"):
        await resume_with_approvals(make_agent(), "tidy-2", client=client)


async def test_an_edit_the_run_cannot_apply_goes_back_to_the_model_as_the_arguments_to_use(
    store: ApprovalStore, client: ApprovalClient
) -> None:
    """Deciding a state by hand (outside run_with_approvals), an edited approval cannot re-aim the call."""
    agent = make_agent()
    paused = await Runner.run(agent, "clean up")
    state = paused.to_state()
    deciding = asyncio.ensure_future(decide_interruptions(state, agent, run_id="by-hand", client=client))
    asked = await pending(store, 2)
    await store.approve(asked["call_a"].id, by="rita", edited_args={"path": "/tmp/other"})
    await store.approve(asked["call_b"].id, by="rita")
    await asyncio.wait_for(deciding, 10)
    result = await Runner.run(agent, state)
    assert result.final_output == (
        'call_a=A person approved this delete_file call only with these arguments: {"path": "/tmp/other"}. '
        "Call it again with them. | call_b=sent to boss@example.com"
    )
    assert DONE == ["email boss@example.com"]
