"""LiteLLMRouterModel, AzureOpenAIServerModel and InferenceClientModel over real HTTP, against the scripted
OpenAI-compatible server of openai_server.py on 127.0.0.1.

Nothing is mocked below the model: a litellm Router (whose one deployment points at the server), the openai
SDK's AsyncAzureOpenAI (on the server's Azure route) and huggingface_hub's AsyncInferenceClient (given the
server's URL as its model) make the requests, and the server records what it received.
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from huggingface_hub.errors import HfHubHTTPError

from agent_runtime.models import (
    AzureOpenAIServerModel,
    ChatMessageStreamDelta,
    InferenceClientModel,
    LiteLLMRouterModel,
    MessageRole,
    Model,
    TokenUsage,
    agglomerate_stream_deltas,
)
from tests.agent_runtime.openai_server import OpenAIServer, ToolCallReply
from tests.agent_runtime.test_models_http import (
    API_MESSAGES,
    LITELLM_STREAMING_WARNINGS,
    MESSAGES,
    close_litellm_clients_sync,
    get_weather,
)

DEPLOYMENT = "my-deployment"
API_VERSION = "2024-10-21"
KINDS = ["router", "azure", "hf"]

# What each client sends, besides the body. huggingface_hub, given a URL as the model, names the model
# "dummy" in the body (the endpoint serves one model).
EXPECTED_PATH = {
    "router": "/v1/chat/completions",
    "azure": f"/openai/deployments/{DEPLOYMENT}/chat/completions",
    "hf": "/v1/chat/completions",
}
EXPECTED_QUERY: dict[str, dict[str, str]] = {"router": {}, "azure": {"api-version": API_VERSION}, "hf": {}}
EXPECTED_MODEL = {"router": "test-model", "azure": DEPLOYMENT, "hf": "dummy"}
EXPECTED_AUTH = {
    "router": ("authorization", "Bearer test"),
    "azure": ("api-key", "test"),
    "hf": ("authorization", "Bearer test"),
}

# Streaming through litellm (the Router) raises warnings inside litellm: see LITELLM_STREAMING_WARNINGS.
STREAMING_KINDS = [pytest.param("router", marks=LITELLM_STREAMING_WARNINGS), "azure", "hf"]


def router_model_list(server: OpenAIServer) -> list[dict[str, Any]]:
    params = {"model": "openai/test-model", "api_base": f"{server.url}/v1", "api_key": "test"}
    return [{"model_name": "test-model", "litellm_params": params}]


def make_model(kind: str, server: OpenAIServer, **kwargs: Any) -> Model:
    if kind == "router":
        return LiteLLMRouterModel("test-model", router_model_list(server), **kwargs)
    if kind == "azure":
        return AzureOpenAIServerModel(
            DEPLOYMENT, azure_endpoint=server.url, api_key="test", api_version=API_VERSION, **kwargs
        )
    assert kind == "hf"
    return InferenceClientModel(f"{server.url}/v1", token="test", **kwargs)


@pytest.fixture(params=STREAMING_KINDS)
def streaming_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def streaming_model(streaming_kind: str, server: OpenAIServer) -> AsyncIterator[Model]:
    model = make_model(streaming_kind, server)
    yield model
    await model.aclose()


def check_request_line(kind: str, server: OpenAIServer) -> None:
    """Every request went to the client's route, with its query and its way of sending the key."""
    header, value = EXPECTED_AUTH[kind]
    for sent in server.http_requests:
        assert (sent.method, sent.path, sent.query) == ("POST", EXPECTED_PATH[kind], EXPECTED_QUERY[kind])
        assert sent.headers[header] == value
        if kind == "azure":
            assert "authorization" not in sent.headers


# -- completions -----------------------------------------------------------------------------------


async def test_agenerate_returns_the_text_and_token_usage(kind: str, model: Model, server: OpenAIServer) -> None:
    server.reply("Hello from the test server.", prompt_tokens=12, completion_tokens=5)

    message = await model.agenerate(MESSAGES)

    assert message.role == MessageRole.ASSISTANT
    assert message.content == "Hello from the test server."
    assert message.tool_calls is None
    assert message.token_usage == TokenUsage(input_tokens=12, output_tokens=5)
    [request] = server.requests
    assert request["model"] == EXPECTED_MODEL[kind]
    assert request["messages"] == API_MESSAGES
    assert not request.get("stream")
    assert "tools" not in request
    assert "stop" not in request
    check_request_line(kind, server)


# -- streaming -------------------------------------------------------------------------------------


async def test_agenerate_stream_yields_the_text_in_pieces(
    streaming_kind: str,
    streaming_model: Model,
    server: OpenAIServer,
) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    server.reply(text, chunks=5)

    deltas = [delta async for delta in streaming_model.agenerate_stream(MESSAGES)]

    assert all(isinstance(delta, ChatMessageStreamDelta) for delta in deltas)
    assert len([delta.content for delta in deltas if delta.content]) >= 3
    message = agglomerate_stream_deltas(deltas)
    assert message.content == text
    assert message.tool_calls is None
    [request] = server.requests
    assert request["stream"] is True
    assert request["model"] == EXPECTED_MODEL[streaming_kind]
    assert request["messages"] == API_MESSAGES
    check_request_line(streaming_kind, server)


@pytest.mark.parametrize(
    "streaming_kind",
    [
        pytest.param("router", marks=LITELLM_STREAMING_WARNINGS),
        "azure",
        "hf",
    ],
)
async def test_agenerate_stream_reports_token_usage(streaming_model: Model, server: OpenAIServer) -> None:
    server.reply("Counted.", prompt_tokens=9, completion_tokens=10)

    deltas = [delta async for delta in streaming_model.agenerate_stream(MESSAGES)]

    assert agglomerate_stream_deltas(deltas).content == "Counted."
    [request] = server.requests
    assert request.get("stream_options") == {"include_usage": True}
    assert agglomerate_stream_deltas(deltas).token_usage == TokenUsage(input_tokens=9, output_tokens=10)


# -- tool calls ------------------------------------------------------------------------------------


async def test_tool_call_request_and_response(kind: str, model: Model, server: OpenAIServer) -> None:
    arguments = {"city": "Paris", "unit": "celsius"}
    server.reply(tool_calls=[ToolCallReply("get_weather", arguments, id="call_weather_1")])

    message = await model.agenerate(MESSAGES, tools_to_call_from=[get_weather])

    [request] = server.requests
    assert request["tools"] == [get_weather.to_openai_schema()]
    assert request["tools"][0]["function"]["name"] == "get_weather"
    assert request["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assert request["tool_choice"] == "required"
    assert not message.text
    [call] = message.tool_calls or []
    assert (call.id, call.type, call.function.name) == ("call_weather_1", "function", "get_weather")
    assert call.function.parsed_arguments() == arguments
    check_request_line(kind, server)


async def test_streamed_tool_calls_are_reassembled(
    streaming_kind: str,
    streaming_model: Model,
    server: OpenAIServer,
) -> None:
    calls = [
        ToolCallReply("get_weather", {"city": "Paris", "unit": "celsius"}, id="call_a"),
        ToolCallReply("get_weather", {"city": "Reykjavik"}, id="call_b"),
    ]
    server.reply(tool_calls=calls, chunks=4)

    deltas = [delta async for delta in streaming_model.agenerate_stream(MESSAGES, tools_to_call_from=[get_weather])]

    pieces = [
        piece.index
        for delta in deltas
        for piece in delta.tool_calls or []
        if piece.function is not None and piece.function.arguments
    ]
    assert pieces.count(0) >= 3
    assert pieces.count(1) >= 3
    message = agglomerate_stream_deltas(deltas)
    assert [(c.id, c.function.name, c.function.parsed_arguments()) for c in message.tool_calls or []] == [
        ("call_a", "get_weather", {"city": "Paris", "unit": "celsius"}),
        ("call_b", "get_weather", {"city": "Reykjavik"}),
    ]
    [request] = server.requests
    assert request["stream"] is True
    assert request["tools"] == [get_weather.to_openai_schema()]
    check_request_line(streaming_kind, server)


# -- errors ----------------------------------------------------------------------------------------

NO_RETRIES: dict[str, dict[str, Any]] = {
    "router": {"client_kwargs": {"num_retries": 0}},  # passed on to litellm.Router
    "azure": {"client_kwargs": {"max_retries": 0}},  # passed on to AsyncAzureOpenAI
    "hf": {},  # AsyncInferenceClient does not retry
}
ERRORS: dict[str, type[Exception]] = {
    "router": openai.InternalServerError,  # litellm.InternalServerError subclasses it
    "azure": openai.InternalServerError,
    "hf": HfHubHTTPError,
}


async def test_a_server_error_raises_instead_of_hanging(kind: str, server: OpenAIServer) -> None:
    model = make_model(kind, server, **NO_RETRIES[kind])
    server.fail(500, "The engine is overloaded.", always=True)
    try:
        async with asyncio.timeout(10):
            with pytest.raises(ERRORS[kind], match=r"The engine is overloaded\."):
                await model.agenerate(MESSAGES)
    finally:
        await model.aclose()
    assert len(server.requests) == 1


# -- the sync face ---------------------------------------------------------------------------------


def wait_for_no_connection(server: OpenAIServer) -> int:
    """The connections the server still holds, once the client side had up to 0.5 s to settle."""
    deadline = time.monotonic() + 0.5
    while (count := server.open_connections()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return count


def drop_leftovers(kind: str) -> None:
    """Whatever a failing test leaked is dropped here, its ResourceWarnings silenced, so that it cannot fail
    a later test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        if kind == "router":
            close_litellm_clients_sync()
        gc.collect()


def test_sync_generate_reuses_one_client_and_close_releases_it(kind: str, server: OpenAIServer) -> None:
    """generate() runs on the background loop, where the model's client lives on: the second call
    goes out on the first one's connection; close() closes it."""
    model = make_model(kind, server)
    server.reply("one")
    server.reply("two")
    try:
        assert model.generate(MESSAGES).content == "one"
        assert model.generate(MESSAGES).content == "two"
        assert len({request.peer for request in server.http_requests}) == 1
        model.close()
        assert wait_for_no_connection(server) == 0
    finally:
        del model
        drop_leftovers(kind)
    assert [r["messages"] for r in server.requests] == [API_MESSAGES] * 2
    check_request_line(kind, server)


# -- known InferenceClientModel bugs ----------------------------------------------------------------


async def test_hf_base_url_through_client_kwargs(server: OpenAIServer) -> None:
    model = InferenceClientModel("test-model", token="test", client_kwargs={"base_url": f"{server.url}/v1"})
    server.reply("Hello.")
    try:
        message = await model.agenerate(MESSAGES)
    finally:
        await model.aclose()
    assert message.content == "Hello."
    check_request_line("hf", server)


async def test_hf_base_url_sends_the_model_id(server: OpenAIServer) -> None:
    client_kwargs = {"base_url": f"{server.url}/v1"}
    model = InferenceClientModel("test-model", token="test", client_kwargs=client_kwargs)
    server.reply("Hello.")
    try:
        assert (await model.agenerate(MESSAGES)).content == "Hello."
    finally:
        await model.aclose()
    check_request_line("hf", server)
    [request] = server.requests
    assert request["model"] == "test-model"
