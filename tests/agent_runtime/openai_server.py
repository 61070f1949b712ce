"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for driving the real model clients.

Each test queues what the next completions return (`server.reply(...)`, `server.fail(...)`); the server
answers `POST /v1/chat/completions` with JSON, or with server-sent events when the request says
`stream: true`, and records every request body it received in `server.requests` (and, in the same order,
the method, path, query and headers of each in `server.http_requests`).

Azure OpenAI's route, `POST /openai/deployments/{deployment}/chat/completions?api-version=...`, answers
from the same script; like Azure, it refuses a request without `api-version` (404, nothing scripted used).

The server runs its own event loop in a thread, so it keeps answering while a test blocks its own
loop (the sync `Model.generate` called from async code blocks the caller by design).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class ToolCallReply:
    name: str
    arguments: JsonDict | str  # a dict is sent as JSON text, as OpenAI does
    id: str = "call_0"

    @property
    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True)
class Reply:
    """One scripted completion. Streamed, `content` goes out in `chunks` pieces (at least one each), and
    each tool call's arguments in `chunks` pieces after a first chunk carrying its id and name."""

    content: str | None = None
    tool_calls: tuple[ToolCallReply, ...] = ()
    prompt_tokens: int = 11
    completion_tokens: int = 7
    chunks: int = 3


@dataclass(frozen=True)
class Failure:
    """An HTTP error with an OpenAI-style error body."""

    status: int = 500
    message: str = "The server had an error while processing your request."
    type: str = "server_error"


@dataclass(frozen=True)
class HttpRequest:
    """What a request carried besides its body. Header names are lower-cased."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    peer: tuple[str, int] | None = None  # the client's address and port: which connection it came on


@dataclass(repr=False)
class OpenAIServer:
    host: str = "127.0.0.1"
    keep_alive: bool = True  # False: close every connection after its response
    requests: list[JsonDict] = field(default_factory=list)
    http_requests: list[HttpRequest] = field(default_factory=list)
    _script: deque[Reply | Failure] = field(default_factory=deque)
    _sticky: Failure | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- scripting -------------------------------------------------------------------------------

    def reply(
        self,
        content: str | None = None,
        *,
        tool_calls: list[ToolCallReply] | None = None,
        prompt_tokens: int = 11,
        completion_tokens: int = 7,
        chunks: int = 3,
    ) -> None:
        """Queue the next completion."""
        with self._lock:
            self._script.append(Reply(content, tuple(tool_calls or ()), prompt_tokens, completion_tokens, chunks))

    def fail(self, status: int = 500, message: str = Failure.message, *, always: bool = False) -> None:
        """Queue an HTTP error for the next request, or (`always`) for every request from now on."""
        failure = Failure(status, message)
        with self._lock:
            if always:
                self._sticky = failure
            else:
                self._script.append(failure)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._sticky = None
            self.requests.clear()
            self.http_requests.clear()
        self.keep_alive = True

    @property
    def pending(self) -> int:
        """Scripted replies not yet sent."""
        with self._lock:
            return len(self._script)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    def __repr__(self) -> str:
        return f"<OpenAIServer {self.url}: {len(self.requests)} request(s), {self.pending} reply(ies) pending>"

    def open_connections(self) -> int:
        """Client connections the server currently holds open."""
        if self._loop is None:
            return 0

        async def count() -> int:
            return len(self._runner.server.connections) if self._runner and self._runner.server else 0

        return asyncio.run_coroutine_threadsafe(count(), self._loop).result(5)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        started = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as error:
                errors.append(error)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_site())
            loop.close()

        self._thread = threading.Thread(target=serve, name="openai-test-server", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the test OpenAI server did not start in time")
        if errors:
            raise errors[0]

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = self._thread = None

    async def _start_site(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure_chat_completions)
        self._runner = web.AppRunner(app, shutdown_timeout=1, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self._port = server.sockets[0].getsockname()[1]

    async def _stop_site(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the endpoint ----------------------------------------------------------------------------

    def _next(self, body: JsonDict, request: web.Request) -> Reply | Failure:
        info = HttpRequest(
            request.method,
            request.path,
            dict(request.query),
            {name.lower(): value for name, value in request.headers.items()},
            tuple(request.transport.get_extra_info("peername")[:2]) if request.transport else None,
        )
        with self._lock:
            self.requests.append(body)
            self.http_requests.append(info)
            if self._sticky is not None:
                return self._sticky
            if not self._script:
                return Failure(500, "the test server has no scripted reply left", "test_script_exhausted")
            return self._script.popleft()

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        reply = self._next(body, request)
        model = body.get("model") or request.match_info.get("deployment", "")
        if isinstance(reply, Failure):
            error = {"message": reply.message, "type": reply.type, "param": None, "code": None}
            return self._closing(web.json_response({"error": error}, status=reply.status))
        completion_id = f"chatcmpl-{len(self.requests)}"
        if not body.get("stream"):
            return self._closing(web.json_response(_completion(completion_id, model, reply)))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        response = self._closing(web.StreamResponse(headers=headers))
        await response.prepare(request)
        for chunk in _chunks(completion_id, model, reply, include_usage):
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _azure_chat_completions(self, request: web.Request) -> web.StreamResponse:
        if "api-version" not in request.query:
            error = {"code": "404", "message": "Resource not found"}
            return self._closing(web.json_response({"error": error}, status=404))
        return await self._chat_completions(request)

    def _closing(self, response: web.StreamResponse) -> web.StreamResponse:
        if not self.keep_alive:
            response.force_close()
        return response


# -- OpenAI's wire format ---------------------------------------------------------------------------


def _usage(reply: Reply) -> JsonDict:
    total = reply.prompt_tokens + reply.completion_tokens
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens, "total_tokens": total}


def _finish_reason(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


def _completion(completion_id: str, model: str, reply: Reply) -> JsonDict:
    message: JsonDict = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
            for c in reply.tool_calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(reply)}],
        "usage": _usage(reply),
    }


def split(text: str, pieces: int) -> list[str]:
    """`text` in `pieces` consecutive non-empty parts (fewer if it is shorter)."""
    if not text:
        return []
    pieces = max(1, min(pieces, len(text)))
    size, extra = divmod(len(text), pieces)
    parts, start = [], 0
    for index in range(pieces):
        end = start + size + (1 if index < extra else 0)
        parts.append(text[start:end])
        start = end
    return parts


def _chunks(completion_id: str, model: str, reply: Reply, include_usage: bool) -> list[JsonDict]:
    def chunk(delta: JsonDict, finish_reason: str | None = None) -> JsonDict:
        data: JsonDict = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            data["usage"] = None  # as OpenAI does: null in every chunk but the last
        return data

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": piece}) for piece in split(reply.content or "", reply.chunks)]
    for index, call in enumerate(reply.tool_calls):
        start = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        chunks.append(chunk({"tool_calls": [start]}))
        chunks += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in split(call.arguments_json, reply.chunks)
        ]
    chunks.append(chunk({}, _finish_reason(reply)))
    if include_usage:
        last = chunk({})
        last["choices"], last["usage"] = [], _usage(reply)
        chunks.append(last)
    return chunks
