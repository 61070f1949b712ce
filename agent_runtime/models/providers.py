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

from .base import Model
from .messages import ChatMessage, ChatMessageStreamDelta
from .openai_format import PerLoopClient, delta_from_chunk, message_from_completion


def import_litellm() -> Any:
    """litellm, configured offline: no price-map download at import, no telemetry."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    return litellm


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
        return await import_litellm().acompletion(**kwargs)

    async def aclose(self) -> None:
        """Close litellm's HTTP clients for this event loop (litellm caches them per loop, by loop id)."""
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
            self._router = import_litellm().Router(model_list=self.model_list, **self.client_kwargs)
        return await self._router.acompletion(**kwargs)


class OpenAIServerModel(Model):
    """Any OpenAI-compatible server through the openai SDK's `AsyncOpenAI` (much less CPU than litellm)."""

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
        self._clients: PerLoopClient[Any] = PerLoopClient(self._make_client)

    def _make_client(self) -> Any:
        import openai

        return openai.AsyncOpenAI(**self.client_kwargs)

    async def _agenerate(self, request: dict[str, Any]) -> ChatMessage:
        return message_from_completion(await self._clients.get().chat.completions.create(**request))

    async def _agenerate_stream(self, request: dict[str, Any]) -> AsyncIterator[ChatMessageStreamDelta]:
        stream = await self._clients.get().chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        async for chunk in stream:
            yield delta_from_chunk(chunk)

    async def aclose(self) -> None:
        """Close this event loop's HTTP client."""
        await self._clients.aclose()


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

        return openai.AsyncAzureOpenAI(**self.client_kwargs)


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
        self._clients: PerLoopClient[Any] = PerLoopClient(self._make_client)

    def _make_client(self) -> Any:
        from huggingface_hub import AsyncInferenceClient

        return AsyncInferenceClient(**self.client_kwargs)

    async def _agenerate(self, request: dict[str, Any]) -> ChatMessage:
        return message_from_completion(await self._clients.get().chat_completion(**request))

    async def _agenerate_stream(self, request: dict[str, Any]) -> AsyncIterator[ChatMessageStreamDelta]:
        stream = await self._clients.get().chat_completion(
            **request, stream=True, stream_options={"include_usage": True}
        )
        async for chunk in stream:
            yield delta_from_chunk(chunk)

    async def aclose(self) -> None:
        await self._clients.aclose()
