"""Reading chat-completions responses and stream chunks (OpenAI's format, also litellm's and HF's)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ..concurrency import background
from .messages import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    TokenUsage,
)
from .sdk import load_sdk

C = TypeVar("C")


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _usage(response: Any) -> TokenUsage | None:
    usage = _get(response, "usage")
    if not usage:
        return None
    return TokenUsage(_get(usage, "prompt_tokens", 0) or 0, _get(usage, "completion_tokens", 0) or 0)


def message_from_completion(response: Any) -> ChatMessage:
    message = _get(_get(response, "choices")[0], "message")
    calls = [
        ChatMessageToolCall(
            id=_get(call, "id") or f"call_{index}",
            type=_get(call, "type") or "function",
            function=ChatMessageToolCallFunction(
                _get(_get(call, "function"), "name"), _get(_get(call, "function"), "arguments") or {}
            ),
        )
        for index, call in enumerate(_get(message, "tool_calls") or [])
    ]
    return ChatMessage(
        MessageRole.ASSISTANT, _get(message, "content"), calls or None, raw=response, token_usage=_usage(response)
    )


def delta_from_chunk(chunk: Any) -> ChatMessageStreamDelta:
    choices = _get(chunk, "choices") or []
    if not choices:
        return ChatMessageStreamDelta(token_usage=_usage(chunk))
    delta = _get(choices[0], "delta")
    calls = [
        ChatMessageToolCallStreamDelta(
            index=_get(call, "index", 0) or 0,
            id=_get(call, "id"),
            type=_get(call, "type"),
            function=ChatMessageToolCallFunction(
                _get(_get(call, "function"), "name") or "", _get(_get(call, "function"), "arguments") or ""
            ),
        )
        for call in _get(delta, "tool_calls") or []
    ]
    return ChatMessageStreamDelta(content=_get(delta, "content"), tool_calls=calls or None, token_usage=_usage(chunk))


class PerLoopClient(Generic[C]):
    """One async SDK client per event loop: their HTTP pools cannot be shared across loops.

    `sdk` names the module the factory needs: it is imported off the loop before the first client.
    A client made on the sync faces' background loop lives until `aclose()` there, or until the
    model is collected, or the process exits: sync calls reuse it, and its connections.
    """

    def __init__(self, factory: Callable[[], C], sdk: str) -> None:
        self._factory = factory
        self._sdk = sdk
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, C] = weakref.WeakKeyDictionary()
        weakref.finalize(self, _close_later, self._clients)  # holds the clients, not self

    async def get(self) -> C:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            await load_sdk(self._sdk)
            client = self._clients.get(loop)  # another task may have made it meanwhile
            if client is None:
                client = self._clients[loop] = self._factory()
                if background.owns_current_thread():
                    background.at_exit(id(self), self.aclose)
        return client

    async def aclose(self) -> None:
        """Close the client made for the running loop, if any."""
        await _close(self._clients.pop(asyncio.get_running_loop(), None))


async def _close(client: Any) -> None:
    close = getattr(client, "close", None) or getattr(client, "aclose", None)
    if close is not None:
        await close()


_closing: set[asyncio.Task[None]] = set()


def _close_later(clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]) -> None:
    """The model is gone: close its clients on their loops, if those still run."""
    for loop, client in list(clients.items()):
        if loop.is_running() and not loop.is_closed():
            loop.call_soon_threadsafe(_spawn_close, client)


def _spawn_close(client: Any) -> None:
    task = asyncio.get_running_loop().create_task(_close(client))
    _closing.add(task)
    task.add_done_callback(_closing.discard)
