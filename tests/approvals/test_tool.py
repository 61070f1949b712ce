"""Approvals inside agents: HumanApprovalTool and require_approval, decided by the test on real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent_runtime import CodeAgent, ScriptedModel, ToolCallingAgent, tool
from agent_runtime.models import tool_call_message
from approvals import ApprovalClient, ApprovalRequest, InvalidRequest
from approvals.asking import RunHolder, current_holder
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
    holder = RunHolder()

    async def first_attempt() -> object:
        current_holder.set(holder)  # as a worker does
        return await code_agent(client).arun("clean up", run_id="run-7")

    first = asyncio.create_task(first_attempt())
    request = await pending_request(client)
    holder.keep_pending = True  # its worker hands the run back (or dies): another attempt takes it up
    first.cancel()
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


# -- a person may take longer than any code budget ---------------------------------------------------


async def decide_after(client: ApprovalClient, seconds: float, queue: str = "ops") -> ApprovalRequest:
    """A reviewer who takes `seconds` to approve the first request, as a person would."""
    request = await pending_request(client, queue)
    await asyncio.sleep(seconds)
    await client.store.approve(request.id, by="alice")
    return request


async def test_a_reviewer_slower_than_the_code_budget_gets_one_request_and_the_agent_goes_on(
    client: ApprovalClient,
) -> None:
    agent = CodeAgent([HumanApprovalTool(client, queue="ops")], ScriptedModel([ASK, FINISH]), executor_timeout=0.3)
    run = asyncio.create_task(agent.arun("clean up", return_full_result=True))
    await decide_after(client, 1.5)  # five budgets long
    result = await asyncio.wait_for(run, 5)
    assert (result.state, result.output) == ("success", "approved: delete /tmp/build")
    assert (await client.store.list_decided()).total == 1 and (await client.store.list_pending()).total == 0
    assert all(step.error is None for step in agent.memory.action_steps)


async def test_require_approval_in_a_tool_calling_agent_waits_as_long_as_the_reviewer(client: ApprovalClient) -> None:
    DELETED.clear()
    model = ScriptedModel(
        [
            tool_call_message(("delete_file", {"path": "/tmp/slow"})),
            tool_call_message(("final_answer", {"answer": "ok"})),
        ]
    )
    agent = ToolCallingAgent([require_approval(delete_file, client=client, queue="ops")], model, run_timeout=30)
    run = asyncio.create_task(agent.arun("tidy up"))
    await decide_after(client, 1.0)
    assert await asyncio.wait_for(run, 5) == "ok"
    assert DELETED == ["/tmp/slow"]


async def test_the_sync_face_and_a_stream_wait_for_a_slow_reviewer_too(client: ApprovalClient) -> None:
    settings = client.settings

    @tool
    async def ask_reviewer(action: str) -> str:
        """Asks a reviewer, through a client on the loop this call runs on.

        Args:
            action: What to do.
        """
        async with ApprovalClient(settings, requested_by="sync-agent") as own:
            return (await own.request_approval(action, {"action": action}, queue="ops")).status.value

    code = "```python\nanswer = ask_reviewer('restart billing')\nprint(answer)\n```"
    synced = CodeAgent([ask_reviewer], ScriptedModel([code, FINISH]), executor_timeout=0.2)
    sync_run = asyncio.create_task(asyncio.to_thread(synced.run, "restart"))  # run(): a loop of its own
    await decide_after(client, 1.0)
    assert await asyncio.wait_for(sync_run, 10) == "approved"

    streamed = CodeAgent([HumanApprovalTool(client, queue="ops")], ScriptedModel([ASK, FINISH]), executor_timeout=0.2)
    steps: list[Any] = []
    following = asyncio.create_task(_collect(streamed.arun("clean up", stream=True), steps))
    await decide_after(client, 1.0)
    await asyncio.wait_for(following, 5)
    assert [type(s).__name__ for s in steps] == ["ActionStep", "ActionStep", "FinalAnswerStep"]
    assert steps[0].error is None and steps[-1].output == "approved: delete /tmp/build"


async def _collect(events: Any, into: list[Any]) -> None:
    async for event in events:
        into.append(event)


async def test_a_run_past_its_time_limit_withdraws_its_requests_and_they_expire_by_then(
    client: ApprovalClient,
) -> None:
    approval = HumanApprovalTool(client, queue="ops", timeout=3600)
    model = ScriptedModel(
        [tool_call_message(("human_approval", {"action": "first"}), ("human_approval", {"action": "second"}))]
    )
    agent = ToolCallingAgent([approval], model, run_timeout=1.0)
    run = asyncio.create_task(agent.arun("two things", return_full_result=True))
    asked = await pending_request(client)
    assert asked.expires_at - asked.created_at <= 2.0  # the run's limit (and a second), not the tool's hour
    result = await asyncio.wait_for(run, 5)
    assert result.state == "run_timeout"
    ended = (await client.store.list_decided(limit=10)).items
    assert [(r.status.value, r.reason) for r in ended] == [
        ("withdrawn", "the agent run reached its time limit while waiting")
    ] * 2
    assert (await client.store.list_pending()).total == 0


async def test_cancelling_a_run_withdraws_its_pending_request(client: ApprovalClient) -> None:
    run = asyncio.create_task(code_agent(client).arun("clean up"))
    request = await pending_request(client)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    withdrawn = await client.get(request.id)
    assert withdrawn.status.value == "withdrawn"
    assert withdrawn.reason == "the agent stopped waiting: the code that asked was cancelled"


async def test_reviewers_edits_must_fit_the_tools_inputs(client: ApprovalClient) -> None:
    @tool
    async def refund(order: str, amount: float, currency: str = "EUR") -> str:
        """Refunds an order.

        Args:
            order: Order id.
            amount: How much.
            currency: ISO code.
        """
        return f"refunded {amount} {currency}"

    model = ScriptedModel(
        [
            "```python\nr = refund(order='A-1', amount=10.0)\nprint(r)\n```",
            "```python\nfinal_answer(r)\n```",
        ]
    )
    run = asyncio.create_task(CodeAgent([require_approval(refund, client=client, queue="ops")], model).arun("go"))
    request = await pending_request(client)
    assert request.args_schema is not None and request.args_schema["required"] == ["order", "amount"]
    with pytest.raises(InvalidRequest) as refused:
        await client.store.approve(request.id, by="alice", edited_args={"amount": "lots", "currencyy": "EUR"})
    fields = {d["field"] for d in refused.value.details}
    assert fields == {"edited_args.amount", "edited_args.currencyy", "edited_args.order"}
    assert (await client.get(request.id)).pending  # nothing written
    await client.store.approve(request.id, by="alice", edited_args={"order": "A-1", "amount": 5, "currency": None})
    assert await asyncio.wait_for(run, 5) == "refunded 5 None"
