"""LiteLLMModel and OpenAIServerModel over real HTTP, against a scripted OpenAI-compatible server on 127.0.0.1.

Nothing is mocked below the model: the openai SDK (directly, or inside litellm) makes the requests, and the
server records what it received.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from agent_runtime import ToolCallingAgent, tool
from agent_runtime.models import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    LiteLLMModel,
    MessageRole,
    Model,
    OpenAIServerModel,
    TokenUsage,
    agglomerate_stream_deltas,
)
from agent_runtime.models.providers import import_litellm
from tests.agent_runtime.openai_server import OpenAIServer, ToolCallReply

# Warnings litellm's streaming raises inside litellm (where an error becomes MidStreamFallbackError): pydantic
# warns when litellm's stream-chunk models get built lazily, at the first chunk, about a `ReadOnly` item in one
# of litellm's TypedDicts; and litellm checks whether a chunk is empty by getattr() on every name in dir(delta),
# deprecated pydantic instance attributes included.
LITELLM_STREAMING_WARNINGS = [
    pytest.mark.filterwarnings(
        "ignore:Item 'summary' on TypedDict class 'ChatCompletionReasoningItem' is using the `ReadOnly` qualifier"
        ":UserWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_(computed_)?fields' attribute on the instance is deprecated"
        ":pydantic.warnings.PydanticDeprecatedSince211"
    ),
]
KINDS = [pytest.param("litellm", marks=LITELLM_STREAMING_WARNINGS), "openai"]
MESSAGES = [
    ChatMessage(MessageRole.SYSTEM, "You are terse."),
    ChatMessage(MessageRole.USER, [{"type": "text", "text": "Say hello."}]),
]
API_MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [{"type": "text", "text": "Say hello."}]},
]


@tool
async def get_weather(city: str, unit: str | None = None) -> str:
    """Get the current weather in a city.

    Args:
        city: The city to look up.
        unit: Temperature unit, "celsius" or "fahrenheit".
    """
    await asyncio.sleep(0)
    return f"Sunny, 22 degrees {unit or 'celsius'} in {city}"


# -- fixtures --------------------------------------------------------------------------------------


def make_model(kind: str, server: OpenAIServer, **kwargs: Any) -> Model:
    if kind == "litellm":
        return LiteLLMModel("openai/test-model", api_base=f"{server.url}/v1", api_key="test", **kwargs)
    return OpenAIServerModel("test-model", api_base=f"{server.url}/v1", api_key="test", **kwargs)


async def close_litellm_clients() -> None:
    """Close the HTTP clients litellm cached (one set per event loop, keyed by `id(loop)`) and forget them, so
    that no later loop given a recycled id gets a closed client."""
    from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

    await close_litellm_async_clients()
    import_litellm().in_memory_llm_clients_cache.flush_cache()


def close_litellm_clients_sync() -> None:
    """The same from sync code, on a loop of its own in a thread (the clients' own loops are gone by now)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, close_litellm_clients()).result()


@pytest.fixture
def sync_model(kind: str, server: OpenAIServer) -> Iterator[Model]:
    """For the sync faces, which run on the background loop; the model's clients there are closed after."""
    model = make_model(kind, server)
    yield model
    model.close()


def content_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content)
    return content or ""


# -- completions -----------------------------------------------------------------------------------


async def test_agenerate_returns_the_text_and_token_usage(model: Model, server: OpenAIServer) -> None:
    server.reply("Hello from the test server.", prompt_tokens=12, completion_tokens=5)

    message = await model.agenerate(MESSAGES)

    assert message.role == MessageRole.ASSISTANT
    assert message.content == "Hello from the test server."
    assert message.tool_calls is None
    assert message.token_usage == TokenUsage(input_tokens=12, output_tokens=5)
    [request] = server.requests
    assert request["model"] == "test-model"
    assert request["messages"] == API_MESSAGES
    assert not request.get("stream")
    assert "stop" not in request
    assert "tools" not in request


def test_generate_sync_face(sync_model: Model, server: OpenAIServer) -> None:
    server.reply("one")
    server.reply("two")
    server.reply("three", chunks=3)

    assert sync_model.generate(MESSAGES).content == "one"
    assert sync_model(MESSAGES).content == "two"
    deltas = list(sync_model.generate_stream(MESSAGES))
    assert agglomerate_stream_deltas(deltas).content == "three"
    assert [r["messages"] for r in server.requests] == [API_MESSAGES] * 3


async def test_generate_inside_a_running_loop_blocks_and_works(sync_model: Model, server: OpenAIServer) -> None:
    server.reply("from a helper loop", prompt_tokens=3, completion_tokens=4)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        ticks += 1

    ticker = asyncio.create_task(tick())
    message = sync_model.generate(MESSAGES)  # sync code in async code: blocks this loop until the answer is in

    assert ticks == 0, "the running loop went on while generate() blocked"
    await ticker
    assert (message.content, message.token_usage) == ("from a helper loop", TokenUsage(3, 4))
    assert len(server.requests) == 1


# -- streaming -------------------------------------------------------------------------------------


async def test_agenerate_stream_yields_the_text_in_pieces_with_usage(model: Model, server: OpenAIServer) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    server.reply(text, chunks=5, prompt_tokens=9, completion_tokens=10)

    deltas = [delta async for delta in model.agenerate_stream(MESSAGES)]

    assert all(isinstance(delta, ChatMessageStreamDelta) for delta in deltas)
    pieces = [delta.content for delta in deltas if delta.content]
    assert len(pieces) >= 3
    message = agglomerate_stream_deltas(deltas)
    assert message.content == text
    assert message.tool_calls is None
    assert message.token_usage == TokenUsage(input_tokens=9, output_tokens=10)
    [request] = server.requests
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    assert request["messages"] == API_MESSAGES


# -- tool calls ------------------------------------------------------------------------------------


async def test_tool_call_request_and_response(model: Model, server: OpenAIServer) -> None:
    arguments = {"city": "Paris", "unit": "celsius"}
    server.reply(tool_calls=[ToolCallReply("get_weather", arguments, id="call_weather_1")])

    message = await model.agenerate(MESSAGES, tools_to_call_from=[get_weather])

    [request] = server.requests
    assert request["tools"] == [get_weather.to_openai_schema()]
    assert request["tools"][0]["function"]["parameters"] == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city to look up."},
            "unit": {"type": "string", "description": 'Temperature unit, "celsius" or "fahrenheit".'},
        },
        "required": ["city"],
    }
    assert request["tool_choice"] == "required"
    assert not message.text
    [call] = message.tool_calls or []
    assert isinstance(call, ChatMessageToolCall)
    assert (call.id, call.type, call.function.name) == ("call_weather_1", "function", "get_weather")
    assert call.function.parsed_arguments() == arguments


async def test_streamed_tool_calls_are_reassembled(model: Model, server: OpenAIServer) -> None:
    calls = [
        ToolCallReply("get_weather", {"city": "Paris", "unit": "celsius"}, id="call_a"),
        ToolCallReply("get_weather", {"city": "Reykjavik"}, id="call_b"),
    ]
    server.reply(tool_calls=calls, chunks=4)

    deltas = [delta async for delta in model.agenerate_stream(MESSAGES, tools_to_call_from=[get_weather])]

    argument_pieces = [
        (piece.index, piece.function.arguments)
        for delta in deltas
        for piece in delta.tool_calls or []
        if piece.function is not None and piece.function.arguments
    ]
    assert len([p for p in argument_pieces if p[0] == 0]) >= 3
    assert len([p for p in argument_pieces if p[0] == 1]) >= 3
    message = agglomerate_stream_deltas(deltas)
    assert [(c.id, c.function.name, c.function.parsed_arguments()) for c in message.tool_calls or []] == [
        ("call_a", "get_weather", {"city": "Paris", "unit": "celsius"}),
        ("call_b", "get_weather", {"city": "Reykjavik"}),
    ]
    assert message.token_usage == TokenUsage(11, 7)
    [request] = server.requests
    assert request["stream"] is True
    assert request["tools"] == [get_weather.to_openai_schema()]


# -- stop sequences --------------------------------------------------------------------------------


async def test_stop_sequences_are_sent_as_stop(model: Model, server: OpenAIServer) -> None:
    server.reply("Thought: I know it.\nObservation: the server ignored stop")

    message = await model.agenerate(MESSAGES, stop_sequences=["Observation:", "<end>"])

    [request] = server.requests
    assert request["stop"] == ["Observation:", "<end>"]
    assert message.content == "Thought: I know it.\n"  # what a server that ignores `stop` sends is cut there


# -- errors ----------------------------------------------------------------------------------------


async def test_a_server_error_raises_instead_of_hanging(model: Model, server: OpenAIServer) -> None:
    server.fail(500, "The engine is overloaded.", always=True)

    async with asyncio.timeout(30):  # a hang fails here, not at the suite's 60 s timeout
        with pytest.raises(openai.InternalServerError, match=r"The engine is overloaded\."):
            await model.agenerate(MESSAGES)

    assert 1 <= len(server.requests) <= 3  # the SDK's default retries, then the error


async def test_a_server_error_while_streaming_raises(kind: str, server: OpenAIServer) -> None:
    no_retries: dict[str, Any] = {"max_retries": 0} if kind == "litellm" else {"client_kwargs": {"max_retries": 0}}
    model = make_model(kind, server, **no_retries)
    server.fail(500, "The engine is overloaded.")
    try:
        async with asyncio.timeout(10):
            with pytest.raises(openai.InternalServerError, match=r"The engine is overloaded\."):
                async for _ in model.agenerate_stream(MESSAGES):
                    pass
    finally:
        await model.aclose()
    assert len(server.requests) == 1
    assert server.requests[0]["stream"] is True


# -- an agent end to end ---------------------------------------------------------------------------


async def run_weather_agent(server: OpenAIServer, stream_outputs: bool = False) -> tuple[ToolCallingAgent, Any]:
    """A ToolCallingAgent on OpenAIServerModel; the server calls get_weather, then final_answer."""
    model = OpenAIServerModel("test-model", api_base=f"{server.url}/v1", api_key="test")
    agent = ToolCallingAgent([get_weather], model, max_steps=4, stream_outputs=stream_outputs)
    server.reply(tool_calls=[ToolCallReply("get_weather", {"city": "Paris"}, id="call_1")])
    server.reply(tool_calls=[ToolCallReply("final_answer", {"answer": "It is sunny in Paris."}, id="call_2")])
    try:
        return agent, await agent.arun("What is the weather in Paris?")
    finally:
        await model.aclose()


@pytest.mark.parametrize("stream_outputs", [False, True], ids=["generate", "stream"])
async def test_tool_calling_agent_over_http(server: OpenAIServer, stream_outputs: bool) -> None:
    agent, answer = await run_weather_agent(server, stream_outputs)

    assert answer == "It is sunny in Paris."
    first, second = server.requests
    assert {t["function"]["name"] for t in first["tools"]} == {"get_weather", "final_answer"}
    assert first["tool_choice"] == "required"
    assert "What is the weather in Paris?" in json.dumps(first["messages"])
    observations = [content_of(m) for m in second["messages"] if "Observation:" in content_of(m)]
    assert observations == ["Observation:\nSunny, 22 degrees celsius in Paris"]
    [action, final] = agent.memory.action_steps
    assert action.observations == "Sunny, 22 degrees celsius in Paris"
    assert final.is_final_answer


# -- known runtime bugs ----------------------------------------------------------------------------


def test_sync_generate_reuses_its_connection_until_closed(kind: str, server: OpenAIServer) -> None:
    """The sync faces run on one background loop: the model's client, and its pooled connection,
    serve every sync call; `close()` releases it."""
    model = make_model(kind, server)
    server.reply("one")
    server.reply("two")
    try:
        assert model.generate(MESSAGES).content == "one"
        assert model.generate(MESSAGES).content == "two"
        first, second = (request.peer for request in server.http_requests)
        assert first == second, "the second call opened a new connection"
        model.close()
        assert wait_for_no_connection(server) == 0
    finally:
        del model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def test_a_collected_model_closes_its_sync_clients(server: OpenAIServer) -> None:
    model = make_model("openai", server)
    server.reply("one")
    assert model.generate(MESSAGES).content == "one"
    assert server.open_connections() == 1
    del model
    gc.collect()
    assert wait_for_no_connection(server) == 0


def wait_for_no_connection(server: OpenAIServer) -> int:
    """The connections the server still holds, once the client side had up to 2 s to settle."""
    deadline = time.monotonic() + 2
    while (count := server.open_connections()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return count


async def test_tool_calling_agent_sends_no_empty_assistant_message(server: OpenAIServer) -> None:
    await run_weather_agent(server)

    second = server.requests[1]["messages"]
    empty = [m for m in second if m["role"] == "assistant" and not content_of(m).strip() and not m.get("tool_calls")]
    assert empty == []
