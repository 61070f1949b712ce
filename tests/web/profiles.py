"""Agent profiles for tests: loaded by name, as a deployment would load its own."""

from __future__ import annotations

import asyncio
from typing import Any

from agent_runtime import CodeAgent, MultiStepAgent, ScriptedModel, tool
from approvals import ApprovalClient


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
