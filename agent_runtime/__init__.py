"""An async-first agent runtime with the smolagents API: tools, models, CodeAgent, ToolCallingAgent."""

from .agents import CodeAgent, MultiStepAgent, RunResult, ToolCallingAgent
from .budget import waiting_for_person
from .context import RunContext, get_run_context
from .errors import (
    AgentError,
    AgentGenerationError,
    AgentMaxStepsError,
    AgentParsingError,
    AgentRunTimeout,
    AgentToolCallError,
    AgentToolExecutionError,
    InterpreterError,
    ToolDefinitionError,
    UnsupportedFeature,
)
from .memory import ActionStep, AgentMemory, FinalAnswerStep, PlanningStep, SystemPromptStep, TaskStep, ToolCall
from .models import (
    AzureOpenAIServerModel,
    ChatMessage,
    ChatMessageStreamDelta,
    InferenceClientModel,
    LiteLLMModel,
    LiteLLMRouterModel,
    MessageRole,
    Model,
    OpenAIServerModel,
    ScriptedModel,
)
from .monitoring import LogLevel
from .tools import FinalAnswerTool, Tool, tool

__all__ = [
    "ActionStep",
    "AgentError",
    "AgentGenerationError",
    "AgentMaxStepsError",
    "AgentMemory",
    "AgentParsingError",
    "AgentRunTimeout",
    "AgentToolCallError",
    "AgentToolExecutionError",
    "AzureOpenAIServerModel",
    "ChatMessage",
    "ChatMessageStreamDelta",
    "CodeAgent",
    "FinalAnswerStep",
    "FinalAnswerTool",
    "InferenceClientModel",
    "InterpreterError",
    "LiteLLMModel",
    "LiteLLMRouterModel",
    "LogLevel",
    "MessageRole",
    "Model",
    "MultiStepAgent",
    "OpenAIServerModel",
    "PlanningStep",
    "RunContext",
    "RunResult",
    "ScriptedModel",
    "SystemPromptStep",
    "TaskStep",
    "Tool",
    "ToolCall",
    "ToolCallingAgent",
    "ToolDefinitionError",
    "UnsupportedFeature",
    "get_run_context",
    "tool",
    "waiting_for_person",
]
