"""Chat messages, tool calls and stream deltas, as the smolagents docs describe them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

JsonDict = dict[str, Any]


class MessageRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL_CALL = "tool-call"
    TOOL_RESPONSE = "tool-response"

    @classmethod
    def roles(cls) -> list[str]:
        return [role.value for role in cls]


@dataclass(slots=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class ChatMessageToolCallFunction:
    name: str
    arguments: Any  # a dict, or the JSON text the provider sent
    description: str | None = None

    def parsed_arguments(self) -> Any:
        """Arguments as Python data: JSON text is decoded, anything else returned as is."""
        if isinstance(self.arguments, str):
            text = self.arguments.strip()
            if not text:
                return {}
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return self.arguments
        return self.arguments


@dataclass(slots=True)
class ChatMessageToolCall:
    id: str
    function: ChatMessageToolCallFunction
    type: str = "function"

    def dict(self) -> JsonDict:
        arguments = self.function.arguments
        return {
            "id": self.id,
            "type": self.type,
            "function": {
                "name": self.function.name,
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
            },
        }


@dataclass(slots=True)
class ChatMessage:
    role: MessageRole | str
    content: str | list[JsonDict] | None = None
    tool_calls: list[ChatMessageToolCall] | None = None
    raw: Any = None
    token_usage: TokenUsage | None = None

    @property
    def text(self) -> str:
        """The content as plain text, whether it was a string or a list of text parts."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")

    def dict(self) -> JsonDict:
        message: JsonDict = {"role": str(self.role), "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.dict() for call in self.tool_calls]
        return message

    @classmethod
    def from_dict(cls, data: JsonDict) -> ChatMessage:
        calls = [
            ChatMessageToolCall(
                id=call.get("id", ""),
                type=call.get("type", "function"),
                function=ChatMessageToolCallFunction(call["function"]["name"], call["function"].get("arguments", {})),
            )
            for call in data.get("tool_calls") or []
        ]
        return cls(role=data["role"], content=data.get("content"), tool_calls=calls or None)


@dataclass(slots=True)
class ChatMessageToolCallStreamDelta:
    """A piece of a tool call as it streams: `index` says which call it belongs to."""

    index: int
    id: str | None = None
    type: str | None = None
    function: ChatMessageToolCallFunction | None = None


@dataclass(slots=True)
class ChatMessageStreamDelta:
    content: str | None = None
    tool_calls: list[ChatMessageToolCallStreamDelta] | None = None
    token_usage: TokenUsage | None = None


@dataclass(slots=True)
class _CallBuilder:
    id: str = ""
    type: str = "function"
    name: str = ""
    arguments: list[str] = field(default_factory=list)


def agglomerate_stream_deltas(
    deltas: Iterable[ChatMessageStreamDelta], role: MessageRole = MessageRole.ASSISTANT
) -> ChatMessage:
    """Join stream deltas into the message they make up (tool-call arguments are concatenated)."""
    content: list[str] = []
    calls: dict[int, _CallBuilder] = {}
    usage = TokenUsage()
    for delta in deltas:
        if delta.content:
            content.append(delta.content)
        for piece in delta.tool_calls or []:
            call = calls.setdefault(piece.index, _CallBuilder())
            call.id = piece.id or call.id
            call.type = piece.type or call.type
            if piece.function is not None:
                call.name += piece.function.name or ""
                if piece.function.arguments:
                    call.arguments.append(str(piece.function.arguments))
        if delta.token_usage:
            usage.input_tokens += delta.token_usage.input_tokens
            usage.output_tokens += delta.token_usage.output_tokens
    tool_calls = [
        ChatMessageToolCall(id=c.id, type=c.type, function=ChatMessageToolCallFunction(c.name, "".join(c.arguments)))
        for _, c in sorted(calls.items())
    ]
    return ChatMessage(role=role, content="".join(content), tool_calls=tool_calls or None, token_usage=usage)
