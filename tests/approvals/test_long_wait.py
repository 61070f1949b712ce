"""On the default budgets: a reviewer who takes longer than the executor's 60 s code budget.

Every other test shrinks the budgets to stay quick; this one keeps the defaults a user gets and
waits as a person would, once, for a CodeAgent, a ToolCallingAgent and a worker's run at the same time.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_runtime import CodeAgent, ScriptedModel, ToolCallingAgent
from agent_runtime.executor.local import DEFAULT_TIMEOUT
from agent_runtime.models import tool_call_message
from approvals import ApprovalClient
from approvals.tool import HumanApprovalTool
from web.runs.profiles import demo_agent
from web.runs.store import RunStatus, RunStore
from web.runs.worker import Worker

ASK = "```python\nanswer = human_approval('rotate the keys')\nprint(answer)\n```"
FINISH = "```python\nfinal_answer(answer)\n```"


@pytest.mark.timeout(180)
async def test_a_reviewer_slower_than_the_default_code_budget_gets_one_request_per_ask(client: ApprovalClient) -> None:
    assert DEFAULT_TIMEOUT == 60.0
    code = CodeAgent([HumanApprovalTool(client)], ScriptedModel([ASK, FINISH]))
    calls = ScriptedModel(
        [
            tool_call_message(("human_approval", {"action": "restart billing"})),
            tool_call_message(("final_answer", {"answer": "restarted"})),
        ]
    )
    tool_calling = ToolCallingAgent([HumanApprovalTool(client)], calls)
    runs = RunStore(client.store)
    worker = Worker(runs, client, demo_agent, name="long-wait")
    working = asyncio.create_task(worker.run())
    run = await runs.submit("renew the certificate", "demo")
    asking = [asyncio.create_task(code.arun("rotate")), asyncio.create_task(tool_calling.arun("restart"))]

    while (await client.store.list_pending()).total < 3:
        await asyncio.sleep(0.05)
    started = time.monotonic()
    await asyncio.sleep(DEFAULT_TIMEOUT + 2)  # the reviewer takes longer than the whole code budget
    assert (await client.store.list_pending()).total == 3  # still one request each: nobody asked again
    for request in (await client.store.list_pending()).items:
        await client.store.approve(request.id, by="alice")

    assert await asyncio.wait_for(asking[0], 10) == "approved: rotate the keys"
    assert await asyncio.wait_for(asking[1], 10) == "restarted"
    while (done := await runs.get(run.id)).finished_at is None:
        await asyncio.sleep(0.05)
    assert (done.status, done.result) == (RunStatus.FINISHED, "approved: Carry out: renew the certificate")
    assert time.monotonic() - started > DEFAULT_TIMEOUT
    assert (await client.store.list_decided()).total == 3
    assert all(step.error is None for agent in (code, tool_calling) for step in agent.memory.action_steps)
    worker.stop()
    await working
    await worker.drain(0)
