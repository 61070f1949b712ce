"""A scripted model for tests and offline demos: answers come from a list or a function."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from .base import Model
from .messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    TokenUsage,
)

Reply = str | ChatMessage
Script = Sequence[Reply] | Callable[[list[dict[str, Any]]], Reply]


class ScriptedModel(Model):
    """Replies from `script`: a list (one reply per call, in order, cycling if `cycle`) or a function of
    the request's messages (so concurrent agents sharing one model each get their own answers).

    `delay` seconds of simulated latency per call; streaming sends the reply in `chunk_size` pieces.
    """

    def __init__(self, script: Script, *, delay: float = 0.0, chunk_size: int = 16, cycle: bool = False, **kwargs: Any):
        super().__init__("scripted", **kwargs)
        self._script = script
        self._replies: Iterator[Reply] = iter(())
        if not callable(script):
            self._replies = itertools.cycle(script) if cycle else iter(script)
        self.delay = delay
        self.chunk_size = chunk_size
        self.requests: list[dict[str, Any]] = []  # every request made, for tests to inspect

    def _next(self, request: dict[str, Any]) -> ChatMessage:
        self.requests.append(request)
        if callable(self._script):
            reply = self._script(request["messages"])
        else:
            try:
                reply = next(self._replies)
            except StopIteration:
                raise RuntimeError("ScriptedModel ran out of scripted replies") from None
        if isinstance(reply, ChatMessage):
            return reply
        prompt = sum(len(str(m.get("content", ""))) for m in request["messages"]) // 4
        return ChatMessage(MessageRole.ASSISTANT, reply, token_usage=TokenUsage(prompt, len(reply) // 4))

    async def _agenerate(self, request: dict[str, Any]) -> ChatMessage:
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._next(request)

    async def _agenerate_stream(self, request: dict[str, Any]) -> AsyncIterator[ChatMessageStreamDelta]:
        message = await self._agenerate(request)
        for piece in re.findall(rf".{{1,{self.chunk_size}}}", message.text, flags=re.DOTALL):
            await asyncio.sleep(0)
            yield ChatMessageStreamDelta(content=piece)
        for index, call in enumerate(message.tool_calls or []):
            yield ChatMessageStreamDelta(
                tool_calls=[ChatMessageToolCallStreamDelta(index, call.id, call.type, call.function)]
            )
        yield ChatMessageStreamDelta(token_usage=message.token_usage)


def tool_call_message(*calls: tuple[str, dict[str, Any]], content: str = "") -> ChatMessage:
    """An assistant message that calls tools: `tool_call_message(("search", {"q": "x"}), ...)`."""
    return ChatMessage(
        MessageRole.ASSISTANT,
        content,
        tool_calls=[
            ChatMessageToolCall(id=f"call_{i}", function=ChatMessageToolCallFunction(name, arguments))
            for i, (name, arguments) in enumerate(calls)
        ],
    )
