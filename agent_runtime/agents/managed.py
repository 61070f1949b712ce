"""Managed agents, as in smolagents: another agent, called by this one like a tool, with a task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ToolDefinitionError
from ..tools import Tool

if TYPE_CHECKING:
    from .base import MultiStepAgent


def managed_agent_tool(agent: MultiStepAgent) -> Tool:
    """A tool named after `agent` whose call runs it (`arun`) on the task given and reports its answer."""
    if not agent.description:
        raise ToolDefinitionError(
            f"managed agent {agent.name!r} needs a description= (what it is good at): the calling agent "
            "chooses it by its name and description"
        )

    class ManagedAgent(Tool):
        name = agent.name
        description = agent.description or ""
        inputs: ClassVar[dict[str, dict[str, Any]]] = {
            "task": {"type": "string", "description": "What the team member should do, with every detail it needs"},
            "additional_args": {
                "type": "object",
                "description": "Optional: data the team member gets as variables",
                "nullable": True,
            },
        }
        output_type = "string"

        async def forward(self, task: str, additional_args: dict[str, Any] | None = None) -> str:
            answer = await agent.arun(task, additional_args=additional_args)
            return f"Here is the final answer from your managed agent '{agent.name}':\n{answer}"

    return ManagedAgent()
