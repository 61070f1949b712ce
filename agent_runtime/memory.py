"""An agent run's memory: its steps as dataclasses, each able to turn itself into chat messages."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import AgentError
from .models.messages import ChatMessage, MessageRole, TokenUsage


def _text(role: MessageRole, text: str) -> ChatMessage:
    return ChatMessage(role, [{"type": "text", "text": text}])


@dataclass(slots=True)
class Timing:
    start_time: float = field(default_factory=time.time)
    end_time: float | None = None

    @property
    def duration(self) -> float | None:
        return None if self.end_time is None else self.end_time - self.start_time

    def stop(self) -> None:
        self.end_time = time.time()


@dataclass(slots=True)
class SystemPromptStep:
    system_prompt: str

    def to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        return [] if summary_mode else [_text(MessageRole.SYSTEM, self.system_prompt)]


@dataclass(slots=True)
class TaskStep:
    task: str

    def to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        return [_text(MessageRole.USER, f"New task:\n{self.task}")]


@dataclass(slots=True)
class PlanningStep:
    plan: str
    model_input_messages: list[ChatMessage] = field(default_factory=list)
    model_output_message: ChatMessage | None = None
    timing: Timing = field(default_factory=Timing)
    token_usage: TokenUsage | None = None

    def to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        if summary_mode:
            return []
        return [
            _text(MessageRole.ASSISTANT, self.plan.strip()),
            _text(MessageRole.USER, "Now proceed and carry out this plan."),
        ]


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: Any
    id: str


@dataclass(slots=True)
class ActionStep:
    step_number: int
    timing: Timing = field(default_factory=Timing)
    model_input_messages: list[ChatMessage] | None = None
    model_output_message: ChatMessage | None = None
    model_output: str | None = None
    tool_calls: list[ToolCall] | None = None
    code_action: str | None = None
    observations: str | None = None
    action_output: Any = None
    error: AgentError | None = None
    is_final_answer: bool = False
    token_usage: TokenUsage | None = None

    def to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        messages: list[ChatMessage] = []
        if self.model_output and self.model_output.strip() and not summary_mode:  # no empty text blocks
            messages.append(_text(MessageRole.ASSISTANT, self.model_output.strip()))
        if self.tool_calls:  # sent as text, which every provider accepts
            listing = "\n".join(f"{c.name}({c.arguments!r})" for c in self.tool_calls)
            messages.append(_text(MessageRole.TOOL_CALL, f"Calling tools:\n{listing}"))
        if self.observations is not None:
            messages.append(_text(MessageRole.TOOL_RESPONSE, f"Observation:\n{self.observations}"))
        if self.error is not None:
            messages.append(
                _text(
                    MessageRole.TOOL_RESPONSE,
                    f"Error:\n{self.error}\nNow let's retry: take care not to repeat previous errors! "
                    "If you have retried several times, try a completely different approach.",
                )
            )
        return messages


@dataclass(slots=True)
class FinalAnswerStep:
    output: Any


MemoryStep = SystemPromptStep | TaskStep | PlanningStep | ActionStep


@dataclass(slots=True)
class AgentMemory:
    system_prompt: SystemPromptStep
    steps: list[TaskStep | PlanningStep | ActionStep] = field(default_factory=list)

    def reset(self) -> None:
        self.steps = []

    def to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        messages = self.system_prompt.to_messages(summary_mode)
        for step in self.steps:
            messages.extend(step.to_messages(summary_mode))
        return messages

    def get_full_steps(self) -> list[dict[str, Any]]:
        return [asdict(step) for step in self.steps]

    @property
    def action_steps(self) -> list[ActionStep]:
        return [s for s in self.steps if isinstance(s, ActionStep)]
