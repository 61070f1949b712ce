"""Model plumbing without HTTP: stop sequences in streams, message conversion, rate limits."""

from __future__ import annotations

import asyncio
import time

from agent_runtime.models import ChatMessage, MessageRole, ScriptedModel, agglomerate_stream_deltas, to_api_messages


async def test_streamed_text_is_cut_at_a_stop_sequence_split_across_chunks() -> None:
    model = ScriptedModel(["code here\nObservation: made up by the model"], chunk_size=3)
    deltas = [
        d async for d in model.agenerate_stream([{"role": "user", "content": "x"}], stop_sequences=["Observation:"])
    ]
    assert agglomerate_stream_deltas(deltas).text == "code here\n"


async def test_generate_cuts_at_a_stop_sequence_the_server_ignored() -> None:
    model = ScriptedModel(["answer<end>ignored"])
    assert (await model.agenerate([{"role": "user", "content": "x"}], stop_sequences=["<end>"])).text == "answer"


def test_api_messages_map_roles_and_merge_consecutive_text() -> None:
    messages = [
        ChatMessage(MessageRole.SYSTEM, "sys"),
        ChatMessage(MessageRole.USER, "task"),
        ChatMessage(MessageRole.TOOL_RESPONSE, "observation"),
        ChatMessage(MessageRole.TOOL_CALL, "calling"),
    ]
    assert to_api_messages(messages) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "task\n\nobservation"},
        {"role": "assistant", "content": "calling"},
    ]


async def test_rate_limit_spaces_calls_without_blocking_the_loop() -> None:
    model = ScriptedModel(["a"] * 4, requests_per_minute=1200)  # one call per 50 ms
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    await asyncio.gather(*(model.agenerate([{"role": "user", "content": "x"}]) for _ in range(4)))
    elapsed = time.monotonic() - started
    ticking.cancel()
    assert 0.14 <= elapsed < 0.5
    assert ticks > 10  # the loop kept running while calls waited for their slot


def test_api_messages_merge_list_content_too() -> None:
    parts = [{"type": "text", "text": "a"}]
    merged = to_api_messages([ChatMessage(MessageRole.ASSISTANT, parts), ChatMessage(MessageRole.TOOL_CALL, "b")])
    assert merged == [
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "\n\n"}, {"type": "text", "text": "b"}],
        }
    ]
