"""Errors of the agent runtime. Most are shown to the model as observations so it can correct itself."""

from __future__ import annotations


class AgentError(Exception):
    """Base class of errors raised by agents, tools and the executor."""


class AgentToolCallError(AgentError, ValueError):
    """A tool was called with arguments that do not match its `inputs`."""


class AgentToolExecutionError(AgentError):
    """A tool raised while running; the message is what the model sees."""


class AgentParsingError(AgentError):
    """The model's output could not be turned into an action (no code block, no tool call)."""


class AgentGenerationError(AgentError):
    """The model could not be called (network, provider error)."""


class AgentMaxStepsError(AgentError):
    """The run used all its steps without a final answer."""


class AgentRunTimeout(AgentError):
    """The run reached its `run_timeout` (people's waits included) before a final answer."""

    def __init__(self, run_timeout: float, step_number: int) -> None:
        super().__init__(f"the run reached its time limit of {run_timeout:g} s at step {step_number}")
        self.run_timeout = run_timeout
        self.step_number = step_number


class InterpreterError(AgentError):
    """Model-written code was refused or failed; the message is shown to the model as an observation."""

    def __init__(self, message: str, logs: str = "") -> None:
        super().__init__(message)
        self.logs = logs  # what the code printed before it failed


class ToolDefinitionError(AgentError, TypeError):
    """A Tool subclass or @tool function is malformed (raised when it is defined, not when called)."""


class UnsupportedFeature(AgentError, ValueError):
    """A smolagents option or method this runtime does not have; the message names what to use instead."""
