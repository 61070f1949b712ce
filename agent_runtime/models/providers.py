"""Models backed by provider SDKs: litellm (and its Router), the openai SDK, huggingface_hub.

Each SDK is imported on first use, so `import agent_runtime` stays fast and needs none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from collections.abc import AsyncIterator
from typing import Any

from ..concurrency import background
from .base import Model
from .messages import ChatMessage, ChatMessageStreamDelta
from .openai_format import PerLoopClient, delta_from_chunk, message_from_completion
from .sdk import import_now, load_sdk


def import_litellm() -> Any:
    """litellm, configured offline: no price-map download at import, no telemetry."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm: Any = import_now("litellm")
    litellm.telemetry = False
    return litellm


async def load_litellm() -> Any:
    """`import_litellm()`, in a worker thread the first time (see `sdk`)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm: Any = await load_sdk("litellm")
    litellm.telemetry = False
    return litellm


async def close_litellm_clients() -> None:
    """Close the HTTP clients litellm made for the running event loop (it caches them by loop id)."""
    cache = import_litellm().in_memory_llm_clients_cache
    suffix = f"-{id(asyncio.get_running_loop())}"
    for key in [k for k in list(cache.cache_dict) if str(k).endswith(suffix)]:
        client = cache.cache_dict.pop(key, None)
        getattr(cache, "ttl_dict", {}).pop(key, None)
        close = getattr(client, "aclose", None) or getattr(client, "close", None)
        with contextlib.suppress(Exception):
            result = close() if close is not None else None
            if inspect.isawaitable(result):
                await result


class LiteLLMModel(Model):
    """Any provider litellm supports: `LiteLLMModel("anthropic/claude-sonnet-4", api_key=...)`."""

    def __init__(
        self,
        model_id: str = "openai/gpt-4o-mini",
        api_base: str | None = None,
        api_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_id, **kwargs)
        self.api_base = api_base
        self.api_key = api_key

    def _completion_kwargs(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"api_base": self.api_base, "api_key": self.api_key, **request}

    async def _acompletion(self, **kwargs: Any) -> Any:
        litellm = await load_litellm()
        if background.owns_current_thread():  # sync faces: litellm's clients for this loop live until exit
            background.at_exit("litellm", close_litellm_clients)
        return await litellm.acompletion(**kwargs)

    async def aclose(self) -> None:
        """Close litellm's HTTP clients for this event loop (litellm caches them per loop, by loop id)."""
        await close_litellm_clients()

    async def _agenerate(self, request: dict[str, Any]) -> ChatMessage:
        return message_from_completion(await self._acompletion(**self._completion_kwargs(request)))

    async def _agenerate_stream(self, request: dict[str, Any]) -> AsyncIterator[ChatMessageStreamDelta]:
        kwargs = {**self._completion_kwargs(request), "stream": True, "stream_options": {"include_usage": True}}
        async for chunk in await self._acompletion(**kwargs):
            yield delta_from_chunk(chunk)


class LiteLLMRouterModel(LiteLLMModel):
    """A litellm Router over several deployments: `model_id` names a `model_name` of `model_list`."""

    def __init__(
        self,
        model_id: str,
        model_list: list[dict[str, Any]],
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_id, **kwargs)
        self.model_list = model_list
        self.client_kwargs = client_kwargs or {}
        self._router: Any = None

    def _completion_kwargs(self, request: dict[str, Any]) -> dict[str, Any]:
        return request

    async def _acompletion(self, **kwargs: Any) -> Any:
        if self._router is None:
            self._router = (await load_litellm()).Router(model_list=self.model_list, **self.client_kwargs)
        return await self._router.acompletion(**kwargs)


class OpenAIServerModel(Model):
    """Any OpenAI-compatible server through the openai SDK's `AsyncOpenAI` (much less CPU than litellm).

    Its HTTP goes through aiohttp (`openai.DefaultAioHttpClient`): httpx's pool rescans every
    connection for each request, 50 ms of CPU per request with 100 in flight. Requests go through
    `client.post` (the SDK's way to call any endpoint) with the body as built: the typed
    `chat.completions.create` walks every message through a TypedDict transform, 2.7 ms per request
    with a CodeAgent's prompt, to produce the same JSON. Replies are still parsed to `ChatCompletion`.
    """

    def __init__(
        self,
        model_id: str,
        api_base: str | None = None,
        api_key: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_id, **kwargs)
        options = {"base_url": api_base, "api_key": api_key, "organization": organization, "project": project}
        self.client_kwargs = {**{k: v for k, v in options.items() if v is not None}, **(client_kwargs or {})}
        self._clients: PerLoopClient[Any] = PerLoopClient(self._make_client, "openai")

    def _make_client(self) -> Any:
        import openai

        return openai.AsyncOpenAI(**{"http_client": openai.DefaultAioHttpClient(), **self.client_kwargs})

    async def _agenerate(self, request: dict[str, Any]) -> ChatMessage:
        client = await self._clients.get()  # imports openai off the loop the first time
        from openai.types.chat import ChatCompletion

        body, options = _body_and_options(request)
        completion = await client.post("/chat/completions", body=body, options=options, cast_to=ChatCompletion)
        return message_from_completion(completion)

    async def _agenerate_stream(self, request: dict[str, Any]) -> AsyncIterator[ChatMessageStreamDelta]:
        client = await self._clients.get()
        import openai
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        body, options = _body_and_options({**request, "stream": True, "stream_options": {"include_usage": True}})
        stream = await client.post(
            "/chat/completions",
            body=body,
            options=options,
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.AsyncStream[ChatCompletionChunk],
        )
        async for chunk in stream:
            yield delta_from_chunk(chunk)

    async def aclose(self) -> None:
        """Close this event loop's HTTP client."""
        await self._clients.aclose()


# The SDK's per-call options, accepted as model kwargs as `create` accepts them: not part of the body.
_REQUEST_OPTIONS = {
    "extra_headers": "headers",
    "extra_query": "params",
    "extra_body": "extra_json",
    "timeout": "timeout",
}


def _body_and_options(request: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    body = {key: value for key, value in request.items() if key not in _REQUEST_OPTIONS}
    options = {_REQUEST_OPTIONS[key]: value for key, value in request.items() if key in _REQUEST_OPTIONS}
    return body, options


class AzureOpenAIServerModel(OpenAIServerModel):
    """Azure OpenAI through `AsyncAzureOpenAI`; `model_id` is the deployment name."""

    def __init__(
        self,
        model_id: str,
        azure_endpoint: str | None = None,
        api_key: str | None = None,
        api_version: str | None = None,
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        options = {"azure_endpoint": azure_endpoint, "api_key": api_key, "api_version": api_version}
        merged = {**{k: v for k, v in options.items() if v is not None}, **(client_kwargs or {})}
        super().__init__(model_id, client_kwargs=merged, **kwargs)

    def _make_client(self) -> Any:
        import openai

        return openai.AsyncAzureOpenAI(**{"http_client": openai.DefaultAioHttpClient(), **self.client_kwargs})


class InferenceClientModel(Model):
    """Hugging Face Inference Providers through `huggingface_hub.AsyncInferenceClient`."""

    def __init__(
        self,
        model_id: str = "Qwen/Qwen2.5-Coder-32B-Instruct",
        provider: str | None = None,
        token: str | None = None,
        timeout: float = 120,
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_id, **kwargs)
        self.client_kwargs: dict[str, Any] = {"provider": provider, "token": token, "timeout": timeout}
        self.client_kwargs.update(client_kwargs or {})
        if "base_url" not in self.client_kwargs:  # base_url is huggingface_hub's alias for model: not both
            self.client_kwargs.setdefault("model", model_id)
        self._clients: PerLoopClient[Any] = PerLoopClient(self._make_client, "huggingface_hub")

    def _make_client(self) -> Any:
        from huggingface_hub import AsyncInferenceClient

        return AsyncInferenceClient(**self.client_kwargs)

    async def _agenerate(self, request: dict[str, Any]) -> ChatMessage:
        client = await self._clients.get()
        return message_from_completion(await client.chat_completion(**request))

    async def _agenerate_stream(self, request: dict[str, Any]) -> AsyncIterator[ChatMessageStreamDelta]:
        client = await self._clients.get()
        stream = await client.chat_completion(**request, stream=True, stream_options={"include_usage": True})
        async for chunk in stream:
            yield delta_from_chunk(chunk)

    async def aclose(self) -> None:
        await self._clients.aclose()
