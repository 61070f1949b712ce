"""A scripted OpenAI-compatible chat-completions server for benchmarks, in a process of its own.

    python bench/model_server.py --latency 0.5      # prints "PORT <n>" once it listens on 127.0.0.1

Every completion waits `--latency` seconds, then answers the conversation as a CodeAgent's model
would for the task "Look up item N and double it.": no assistant turn yet, a code action calling
`lookup(N)`; otherwise a code action calling `final_answer`. The same replies drive this project's
agents and smolagents' (code in <code> tags, which both parse), so they do the same work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from typing import Any

from aiohttp import web

TASK = "Look up item {n} and double it."
_ITEM = re.compile(r"item (\d+)")


def task(n: int) -> str:
    return TASK.format(n=n)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def reply_for(messages: list[dict[str, Any]]) -> str:
    users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
    found = next((match for text in users if (match := _ITEM.search(text))), None)
    n = int(found.group(1)) if found else 0
    if not any(m.get("role") == "assistant" for m in messages):
        return f"Thought: I look the item up first.\n<code>\nvalue = lookup({n})\nprint(value)\n</code>"
    return "Thought: I have it; I double it.\n<code>\nfinal_answer(value * 2)\n</code>"


def completion(content: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 200, "completion_tokens": 20, "total_tokens": 220},
    }


def make_app(latency: float) -> web.Application:
    async def chat_completions(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(latency)
        return web.json_response(completion(reply_for(body.get("messages", [])), body.get("model", "bench")))

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    return app


async def serve(port: int, latency: float) -> None:
    runner = web.AppRunner(make_app(latency), access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds each completion takes")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.latency))


if __name__ == "__main__":
    main()
