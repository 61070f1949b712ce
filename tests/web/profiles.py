"""Agent profiles for tests: loaded by name, as a deployment would load its own."""

from __future__ import annotations

import asyncio
from typing import Any

from agent_runtime import CodeAgent, MultiStepAgent, ScriptedModel, tool
from approvals import ApprovalClient
from approvals.tool import HumanApprovalTool


@tool
async def shout(text: str) -> str:
    """Upper-cases text, after a moment.

    Args:
        text: What to shout.
    """
    await asyncio.sleep(0.05)
    return text.upper()


def _reply(messages: list[dict[str, Any]]) -> str:
    task = str(messages[1]["content"]).split("New task:\\n", 1)[-1].split("'")[0]
    return f"```python\nfinal_answer(shout({task!r}))\n```"


def echo_agent(client: ApprovalClient) -> MultiStepAgent:
    """Answers each task with the task shouted: a result that shows whose task it was."""
    return CodeAgent([shout], ScriptedModel(_reply, delay=0.01), name="echo")


LEDGER = "test:ledger"  # under the settings' prefix: what the ledger agent did, one entry per side effect


def _text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


def _ledger_reply(messages: list[dict[str, Any]]) -> str:
    task = _text(messages[1]).split("New task:\n", 1)[-1].split("\n", 1)[0]
    observations = sum("Observation" in _text(m) for m in messages)
    if observations == 0:
        return f"Thought: look first.\n```python\nprint(shout({task!r}))\n```"
    if observations == 1:
        return f"Thought: ask.\n```python\nanswer = human_approval({f'Carry out: {task}'!r})\nprint(answer)\n```"
    return f"Thought: act, once.\n```python\nfinal_answer(record({task!r}))\n```"


def ledger_agent(client: ApprovalClient) -> MultiStepAgent:
    """Looks, asks a person, then acts: its action appends the task to a ledger in Redis, so a test
    can count how often each run really acted."""

    @tool
    async def record(task: str) -> str:
        """Does the thing, and notes it in the ledger.

        Args:
            task: What was done.
        """
        await client.store.redis.rpush(client.store.keys.prefix + LEDGER, task)
        return f"done: {task}"

    tools = [shout, record, HumanApprovalTool(client, queue="default")]
    return CodeAgent(tools, ScriptedModel(_ledger_reply), name="ledger", planning_interval=None)
