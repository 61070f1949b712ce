"""Agent profiles: named factories that build a fresh agent for each run.

A profile is `package.module:function`, a function taking the server's `ApprovalClient` and returning
an agent (`CodeAgent`, `ToolCallingAgent`). Built in: `demo` (a scripted model, no API key) and
`litellm` (a model from APPROVALS_MODEL, its provider key from the usual variables, and optional
APPROVALS_API_BASE). Both ask a person through `HumanApprovalTool` before acting.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any, cast

from agent_runtime import CodeAgent, LiteLLMModel, MultiStepAgent, ScriptedModel
from approvals import ApprovalClient
from approvals.errors import InvalidSettings
from approvals.tool import HumanApprovalTool

AgentFactory = Callable[[ApprovalClient], MultiStepAgent]
BUILT_IN = {"demo": "web.runs.profiles:demo_agent", "litellm": "web.runs.profiles:litellm_agent"}


def load_profile(name: str) -> AgentFactory:
    """The factory a profile names; a clear error if it cannot be found."""
    target = BUILT_IN.get(name, name)
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise InvalidSettings(
            "agent", f"{name!r} is neither a built-in profile {sorted(BUILT_IN)} nor 'module:function'"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise InvalidSettings("agent", f"cannot load the agent profile {target!r} ({error})") from None
    if not callable(factory):
        raise InvalidSettings("agent", f"{target!r} is not callable")
    return cast(AgentFactory, factory)


def _demo_reply(messages: list[dict[str, Any]]) -> str:
    task = _task_of(messages)
    if "Observation" not in _text(messages[-1]):
        code = f"answer = human_approval({f'Carry out: {task}'!r})\nprint(answer)"
        return f"Thought: a person should approve this first.\n```python\n{code}\n```"
    return "Thought: report what the reviewer said.\n```python\nfinal_answer(answer)\n```"


def _text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _task_of(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if "New task:\n" in (text := _text(message)):
            return text.split("New task:\n", 1)[1].split("\n", 1)[0]
    return "the task"


def demo_agent(client: ApprovalClient) -> MultiStepAgent:
    """A CodeAgent with a scripted model: it asks a person to approve the task, then reports the answer."""
    return CodeAgent([HumanApprovalTool(client, queue="default")], ScriptedModel(_demo_reply), name="demo-agent")


def litellm_agent(client: ApprovalClient) -> MultiStepAgent:
    model_id = os.environ.get("APPROVALS_MODEL")
    if not model_id:
        raise InvalidSettings("APPROVALS_MODEL", "set it to a litellm model id, for example openai/gpt-4o-mini")
    model = LiteLLMModel(model_id, api_base=os.environ.get("APPROVALS_API_BASE") or None)
    return CodeAgent([HumanApprovalTool(client, queue="default")], model, name="litellm-agent", planning_interval=None)
