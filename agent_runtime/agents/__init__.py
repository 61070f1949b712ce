"""Agents: `CodeAgent` and `ToolCallingAgent`, async-first, with `arun` and a sync `run` over it.

`base` holds the step loop they share, `runs` what one run owns and how it ended.
"""

from .base import MultiStepAgent
from .code import CodeAgent
from .runs import RunResult, RunState
from .tool_calling import ToolCallingAgent

__all__ = ["CodeAgent", "MultiStepAgent", "RunResult", "RunState", "ToolCallingAgent"]
