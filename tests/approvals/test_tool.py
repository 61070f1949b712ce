"""Approvals inside agents: HumanApprovalTool and require_approval, decided by the test on real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent_runtime import CodeAgent, ScriptedModel, ToolCallingAgent, tool
from agent_runtime.models import tool_call_message
from approvals import ApprovalClient, ApprovalRequest
from approvals.tool import HumanApprovalTool, require_approval

ASK = "```python\nanswer = human_approval('delete /tmp/build')\nprint(answer)\n```"
FINISH = "```python\nfinal_answer(answer)\n```"
DELETED: list[str] = []


@tool
async def delete_file(path: str) -> str:
    """Deletes a file.

    Args:
        path: The file.
    """
    DELETED.append(path)
    return f"deleted {path}"


async def pending_request(client: ApprovalClient, queue: str = "ops") -> ApprovalRequest:
    for _ in range(500):
        page = await client.store.list_pending(queue)
        if page.items:
            return page.items[0]
        await asyncio.sleep(0.01)
    raise AssertionError("the agent never asked for approval")


def code_agent(client: ApprovalClient, **tool_options: Any) -> CodeAgent:
    approval = HumanApprovalTool(client, queue="ops", **tool_options)
    return CodeAgent([approval], ScriptedModel([ASK, FINISH]), name="janitor")


async def test_agent_waits_for_approval_and_reviewer_context_is_attached(client: ApprovalClient) -> None:
    agent = code_agent(client)
    run = asyncio.create_task(agent.arun("clean the build folder", run_id="run-42"))
    request = await pending_request(client)
    assert (request.action, request.args) == ("delete /tmp/build", {"action": "delete /tmp/build"})
    assert (request.agent_id, request.run_id, request.requested_by) == ("janitor", "run-42", "agent-1")
    assert request.idempotency_key == "run-42:1:0"
    assert request.context["task"] == "clean the build folder"
    assert request.context["step"] == 1
    assert not run.done()
    await client.store.approve(request.id, by="alice")
    assert await asyncio.wait_for(run, 5) == "approved: delete /tmp/build"


@pytest.mark.parametrize(
    ("decide", "expected"),
    [
        ({"edited_args": {"action": "delete /tmp/build/cache"}}, "approved with changes: delete /tmp/build/cache"),
        ({"reason": "keep the build"}, "rejected: keep the build"),
    ],
)
async def test_edits_and_rejections_reach_the_agent(
    client: ApprovalClient, decide: dict[str, Any], expected: str
) -> None:
    run = asyncio.create_task(code_agent(client).arun("clean up"))
    request = await pending_request(client)
    if "reason" in decide:
        await client.store.reject(request.id, by="alice", reason=decide["reason"])
    else:
        await client.store.approve(request.id, by="alice", **decide)
    assert await asyncio.wait_for(run, 5) == expected


async def test_expiry_is_a_rejection(client: ApprovalClient) -> None:
    result = await asyncio.wait_for(code_agent(client, timeout=0.2).arun("clean up"), 5)
    assert result.startswith("rejected: ")
    assert "expired" in result


async def test_rerun_of_the_same_run_attaches_to_the_request_it_made(client: ApprovalClient) -> None:
    first = asyncio.create_task(code_agent(client).arun("clean up", run_id="run-7"))
    request = await pending_request(client)
    first.cancel()  # the process running the agent dies while waiting
    with pytest.raises(asyncio.CancelledError):
        await first
    await client.store.approve(request.id, by="alice")

    result = await asyncio.wait_for(code_agent(client).arun("clean up", run_id="run-7"), 5)
    assert result == "approved: delete /tmp/build"
    assert (await client.store.list_decided()).total == 1  # asked once, not twice


async def test_require_approval_runs_the_tool_with_the_approved_arguments(client: ApprovalClient) -> None:
    DELETED.clear()
    guarded = require_approval(delete_file, client=client, queue="ops")
    model = ScriptedModel(
        [
            tool_call_message(("delete_file", {"path": "/etc/passwd"})),
            tool_call_message(("delete_file", {"path": "/tmp/a"})),
            tool_call_message(("final_answer", {"answer": "done"})),
        ]
    )
    run = asyncio.create_task(ToolCallingAgent([guarded], model).arun("tidy up"))
    dangerous = await pending_request(client)
    assert (dangerous.action, dangerous.args) == ("delete_file", {"path": "/etc/passwd"})
    await client.store.reject(dangerous.id, by="alice", reason="never touch /etc")
    narrowed = await pending_request(client)
    await client.store.approve(narrowed.id, by="alice", edited_args={"path": "/tmp/a/cache"})
    assert await asyncio.wait_for(run, 5) == "done"
    assert DELETED == ["/tmp/a/cache"]  # the rejected call never ran; the approved one ran as edited


async def test_an_approved_call_runs_once_even_when_its_run_is_run_again(client: ApprovalClient) -> None:
    """The worker died after the approved call ran: the re-run gets the noted result, the tool does not run."""
    DELETED.clear()
    script = [
        tool_call_message(("delete_file", {"path": "/tmp/once"})),
        tool_call_message(("final_answer", {"answer": "ok"})),
    ]

    def agent() -> ToolCallingAgent:
        return ToolCallingAgent(
            [require_approval(delete_file, client=client, queue="ops")], ScriptedModel(list(script))
        )

    first = agent()
    run = asyncio.create_task(first.arun("tidy up", run_id="run-once"))
    request = await pending_request(client)
    await client.store.approve(request.id, by="alice")
    await asyncio.wait_for(run, 5)
    again = agent()
    await asyncio.wait_for(again.arun("tidy up", run_id="run-once"), 5)
    assert DELETED == ["/tmp/once"]
    assert again.memory.action_steps[0].observations == first.memory.action_steps[0].observations == "deleted /tmp/once"
    assert await client.store.outcome(request.id) == (True, "deleted /tmp/once")


async def test_rejection_is_a_plain_observation_for_the_model(client: ApprovalClient) -> None:
    guarded = require_approval(delete_file, client=client, queue="ops")
    model = ScriptedModel(
        [tool_call_message(("delete_file", {"path": "/x"})), tool_call_message(("final_answer", {"answer": "ok"}))]
    )
    agent = ToolCallingAgent([guarded], model)
    run = asyncio.create_task(agent.arun("tidy up"))
    request = await pending_request(client)
    await client.store.reject(request.id, by="alice", reason="not now")
    await asyncio.wait_for(run, 5)
    step = agent.memory.action_steps[0]
    assert step.error is None
    assert step.observations == "The reviewer did not approve this delete_file call (rejected): not now"


async def test_tool_calling_agents_requests_carry_context_and_positional_keys(client: ApprovalClient) -> None:
    approval = HumanApprovalTool(client, queue="ops")
    model = ScriptedModel(
        [
            tool_call_message(("human_approval", {"action": "first"}), ("human_approval", {"action": "second"})),
            tool_call_message(("final_answer", {"answer": "done"})),
        ]
    )
    run = asyncio.create_task(ToolCallingAgent([approval], model, name="ops-bot").arun("two things", run_id="r9"))
    for _ in range(500):
        page = await client.store.list_pending("ops")
        if page.total == 2:
            break
        await asyncio.sleep(0.01)
    keys = {r.action: r.idempotency_key for r in page.items}
    assert keys == {"first": "r9:1:0.0", "second": "r9:1:1.0"}
    assert {r.context["task"] for r in page.items} == {"two things"}
    assert {r.agent_id for r in page.items} == {"ops-bot"}
    for request in page.items:
        await client.store.approve(request.id, by="alice")
    assert await asyncio.wait_for(run, 5) == "done"
