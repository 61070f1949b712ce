"""Tools: definition checks, argument checks, sync and async forward, and the @tool decorator."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, ClassVar

import pytest

from agent_runtime import AgentToolCallError, Tool, ToolDefinitionError, tool


class Weather(Tool):
    name = "weather"
    description = "Weather for a city."
    inputs: ClassVar[dict[str, dict[str, Any]]] = {
        "city": {"type": "string", "description": "City name"},
        "days": {"type": "integer", "description": "How many days", "nullable": True},
    }
    output_type = "string"

    async def forward(self, city: str, days: int | None = None) -> str:
        await asyncio.sleep(0)
        return f"{city}: sunny for {days or 1} day(s)"


class Blocking(Tool):
    name = "blocking"
    description = "Sync work."
    inputs: ClassVar[dict[str, dict[str, Any]]] = {"x": {"type": "number"}}
    output_type = "string"

    def forward(self, x: float) -> str:
        return f"{x} on {threading.current_thread().name}"


async def test_async_tool_call_returns_a_coroutine_and_acall_awaits_it() -> None:
    weather = Weather()
    assert weather.is_async
    assert await weather("Paris") == "Paris: sunny for 1 day(s)"
    assert await weather.acall(city="Oslo", days=3) == "Oslo: sunny for 3 day(s)"
    assert await weather.acall({"city": "Rome", "days": 2}) == "Rome: sunny for 2 day(s)"


async def test_sync_tool_runs_in_the_runtimes_worker_threads_not_on_the_loop() -> None:
    result = await Blocking().acall(1.5)
    assert result.startswith("1.5 on agent-runtime-tool")
    assert Blocking()(2) == f"2 on {threading.current_thread().name}"  # plain call stays sync


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing the required argument 'city'"),
        ((), {"city": 3}, "must be of type string"),
        ((), {"city": "x", "days": "two"}, "must be of type integer"),
        ((), {"city": "x", "days": True}, "must be of type integer"),
        ((), {"city": "x", "weeks": 1}, "has no argument"),
        (("a", 1, 2), {}, "takes 2 argument"),
        (("a",), {"city": "b"}, "twice"),
    ],
)
async def test_bad_arguments_are_refused_before_forward(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(AgentToolCallError, match=message):
        await Weather().acall(*args, **kwargs)


def test_malformed_tool_classes_are_refused_at_definition() -> None:
    class NoName(Tool):
        description = "x"
        inputs: ClassVar[dict[str, dict[str, Any]]] = {}
        output_type = "string"

    class BadType(Weather):
        inputs: ClassVar[dict[str, dict[str, Any]]] = {"city": {"type": "text"}}

    class Mismatch(Weather):
        inputs: ClassVar[dict[str, dict[str, Any]]] = {"town": {"type": "string"}}

    for cls, message in ((NoName, "'name'"), (BadType, "needs a 'type'"), (Mismatch, "must accept the inputs")):
        with pytest.raises(ToolDefinitionError, match=message):
            cls()


async def test_tool_decorator_builds_inputs_from_hints_and_docstring() -> None:
    @tool
    async def search(query: str, limit: int = 5, exact: bool | None = None) -> list:
        """Searches the web.

        Args:
            query: What to look for,
                over two lines.
            limit: How many results.
            exact: Exact match only.
        """
        return [query] * limit

    assert search.name == "search"
    assert search.description == "Searches the web."
    assert search.inputs == {
        "query": {"type": "string", "description": "What to look for, over two lines."},
        "limit": {"type": "integer", "description": "How many results.", "nullable": True},
        "exact": {"type": "boolean", "description": "Exact match only.", "nullable": True},
    }
    assert search.output_type == "array"
    assert await search.acall("x", limit=2) == ["x", "x"]
    schema = search.to_openai_schema()["function"]
    assert schema["parameters"]["required"] == ["query"]
    assert "def search(query: string, limit: integer, exact: boolean) -> array:" in search.to_code_prompt()


def test_tool_decorator_needs_hints_and_descriptions() -> None:
    def no_hint(x):
        """Does.

        Args:
            x: thing
        """

    def no_doc(x: int) -> int:
        """Does."""
        return x

    with pytest.raises(ToolDefinitionError, match="type hint"):
        tool(no_hint)
    with pytest.raises(ToolDefinitionError, match="describe 'x'"):
        tool(no_doc)
