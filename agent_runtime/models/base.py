"""`Model`: the async core every model implements, with sync faces and an optional rate limit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..concurrency import RateLimiter, iterate_async_sync, run_coroutine_sync
from ..turns import take_turn
from .messages import ChatMessage, ChatMessageStreamDelta, MessageRole, agglomerate_stream_deltas

if TYPE_CHECKING:
    from ..tools import Tool

Messages = Sequence[ChatMessage | dict[str, Any]]

# Roles the chat APIs know; our tool-call/tool-response steps are sent as assistant/user text.
ROLE_CONVERSIONS = {MessageRole.TOOL_CALL: MessageRole.ASSISTANT, MessageRole.TOOL_RESPONSE: MessageRole.USER}


class Model:
    """Subclasses implement `_agenerate` and, for true streaming, `_agenerate_stream`.

    A model holds no per-request state, so one instance can serve many concurrent agents.
    """

    def __init__(
        self,
        model_id: str | None = None,
        *,
        requests_per_minute: float | None = None,
        flatten_messages_as_text: bool = False,
        **kwargs: Any,
    ):
        """`flatten_messages_as_text` (as in smolagents) sends each message's content as one string, for
        servers that take no list of content parts; other keyword arguments go with every request."""
        self.model_id = model_id
        self.kwargs = kwargs  # passed to every completion call
        self.rate_limiter = RateLimiter(requests_per_minute)
        self.flatten_messages_as_text = flatten_messages_as_text

    # -- async core ------------------------------------------------------------------------------

    async def agenerate(
        self,
        messages: Messages,
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Tool] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        await self.rate_limiter.acquire()
        request = self._request(messages, stop_sequences, response_format, tools_to_call_from, kwargs)
        message = await self._agenerate(request)
        await take_turn()  # many replies arriving together are read a turn at a time
        return _strip_stop_sequences(message, stop_sequences)

    async def agenerate_stream(
        self,
        messages: Messages,
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Tool] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatMessageStreamDelta]:
        await self.rate_limiter.acquire()
        request = self._request(messages, stop_sequences, response_format, tools_to_call_from, kwargs)
        stop = _StopFilter(stop_sequences or [])
        async for delta in self._agenerate_stream(request):
            if delta.content:
                delta.content = stop.feed(delta.content)
            yield delta
        if rest := stop.flush():
            yield ChatMessageStreamDelta(content=rest)

    async def _agenerate(self, request: dict[str, Any]) -> ChatMessage:
        """One completion. The default joins the stream, for models that only stream."""
        return agglomerate_stream_deltas([delta async for delta in self._agenerate_stream(request)])

    async def _agenerate_stream(self, request: dict[str, Any]) -> AsyncIterator[ChatMessageStreamDelta]:
        """Streamed completion. The default yields the whole answer as one delta."""
        message = await self._agenerate(request)
        yield ChatMessageStreamDelta(content=message.text or None, token_usage=message.token_usage)

    def _request(
        self,
        messages: Messages,
        stop_sequences: list[str] | None,
        response_format: dict[str, Any] | None,
        tools: list[Tool] | None,
        kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        api_messages = to_api_messages(messages)
        if self.flatten_messages_as_text:
            for message in api_messages:
                if isinstance(message.get("content"), list):
                    message["content"] = "\n".join(
                        part.get("text", "") for part in message["content"] if isinstance(part, dict)
                    )
        request: dict[str, Any] = {**self.kwargs, "messages": api_messages, **kwargs}
        if self.model_id is not None:
            request.setdefault("model", self.model_id)
        if stop_sequences:
            request["stop"] = list(stop_sequences)
        if response_format is not None:
            request["response_format"] = response_format
        if tools:
            request["tools"] = [t.to_openai_schema() for t in tools]
            request.setdefault("tool_choice", "required")
        return request

    async def aclose(self) -> None:
        """Close the HTTP clients this model made for the running event loop (none by default)."""

    # -- sync faces: on the process's background loop, where the model's clients are reused -------

    def generate(self, messages: Messages, **kwargs: Any) -> ChatMessage:
        return run_coroutine_sync(lambda: self.agenerate(messages, **kwargs))

    def generate_stream(self, messages: Messages, **kwargs: Any) -> Iterator[ChatMessageStreamDelta]:
        return iterate_async_sync(lambda: self.agenerate_stream(messages, **kwargs))

    def close(self) -> None:
        """Close the HTTP clients the sync faces made (they are reused until then, or until exit)."""
        run_coroutine_sync(self.aclose)

    def __call__(self, messages: Messages, **kwargs: Any) -> ChatMessage:
        return self.generate(messages, **kwargs)


def to_api_messages(messages: Messages) -> list[dict[str, Any]]:
    """Chat-completions messages: roles mapped, consecutive same-role text merged."""
    result: list[dict[str, Any]] = []
    for message in messages:
        data = message.dict() if isinstance(message, ChatMessage) else dict(message)
        role = MessageRole(data["role"])
        data["role"] = ROLE_CONVERSIONS.get(role, role).value
        previous = result[-1] if result else None
        if (
            previous
            and previous["role"] == data["role"]
            and not data.get("tool_calls")
            and not previous.get("tool_calls")
        ):
            # Several providers require alternating roles: merge what our steps split.
            previous["content"] = _merged(previous.get("content"), data.get("content"))
            continue
        result.append(data)
    return result


def _merged(first: Any, second: Any) -> Any:
    if isinstance(first, str) and isinstance(second, str):
        return f"{first}\n\n{second}"
    return [*_parts(first), {"type": "text", "text": "\n\n"}, *_parts(second)]


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


class _StopFilter:
    """Cuts a streamed text at the first stop sequence, holding back what could be its beginning."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> str | None:
        if self.stopped:
            return None
        if not self.stops:
            return text
        self.pending += text
        cut = min((i for i in (self.pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            out, self.pending, self.stopped = self.pending[:cut], "", True
            return out or None
        keep = max(0, len(self.pending) - self.hold)
        out, self.pending = self.pending[:keep], self.pending[keep:]
        return out or None

    def flush(self) -> str:
        out, self.pending = ("" if self.stopped else self.pending), ""
        return out


def _strip_stop_sequences(message: ChatMessage, stop_sequences: list[str] | None) -> ChatMessage:
    """Providers that ignore `stop` (or echo it) would leak a stop sequence into the content."""
    if stop_sequences and isinstance(message.content, str):
        for stop in stop_sequences:
            index = message.content.find(stop)
            if index >= 0:
                message.content = message.content[:index]
    return message
