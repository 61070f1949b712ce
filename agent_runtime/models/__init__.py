"""Models: chat messages and the async model interface, with provider-backed and scripted models."""

from .base import Model, to_api_messages
from .messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    TokenUsage,
    agglomerate_stream_deltas,
)
from .providers import (
    AzureOpenAIServerModel,
    InferenceClientModel,
    LiteLLMModel,
    LiteLLMRouterModel,
    OpenAIServerModel,
)
from .scripted import ScriptedModel, tool_call_message

__all__ = [
    "AzureOpenAIServerModel",
    "ChatMessage",
    "ChatMessageStreamDelta",
    "ChatMessageToolCall",
    "ChatMessageToolCallFunction",
    "ChatMessageToolCallStreamDelta",
    "InferenceClientModel",
    "LiteLLMModel",
    "LiteLLMRouterModel",
    "MessageRole",
    "Model",
    "OpenAIServerModel",
    "ScriptedModel",
    "TokenUsage",
    "agglomerate_stream_deltas",
    "to_api_messages",
    "tool_call_message",
]
