"""LangGraph (from PyPI) pausing for approval: interrupts become requests, decisions made through the store
resume the graph with Command(resume=...); a graph paused in one process is finished in another, through
langgraph-checkpoint-sqlite's saver."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Send
from redis.asyncio import Redis

from approvals import ApprovalClient, ApprovalRequest, ApprovalStore, Settings
from approvals.integrations.langgraph import (
    request_approval,
    require_approval,
    resume_with_approvals,
    run_with_approvals,
)

ROOT = Path(__file__).resolve().parents[2]
DONE: list[str] = []


class Deploy(TypedDict, total=False):
    service: str
    decision: dict[str, Any]
    outcome: str


def approve_deploy(state: Deploy) -> Deploy:
    decision = request_approval("deploy", {"service": state["service"], "percent": 5}, queue="deploys")
    return {"decision": decision}


def deploy(state: Deploy) -> Deploy:
    decision = state["decision"]
    if not decision["approved"]:
        return {"outcome": f"not deployed: {decision['reason']}"}
    DONE.append(f"deploy {decision['args']}")
    return {"outcome": f"deployed {decision['args']['service']} at {decision['args']['percent']}%"}


def deploy_graph(checkpointer: Any) -> Any:
    builder = StateGraph(Deploy)
    builder.add_node("approve", approve_deploy)
    builder.add_node("deploy", deploy)
    builder.add_edge(START, "approve")
    builder.add_edge("approve", "deploy")
    builder.add_edge("deploy", END)
    return builder.compile(checkpointer=checkpointer)


@tool
def delete_file(path: str) -> str:
    """Delete a file."""
    DONE.append(f"delete {path}")
    return f"deleted {path}"


def agent_graph() -> Any:
    """A tool-calling loop whose model deletes two files at once; each call goes through its own task."""
    model = FakeMessagesListChatModel(
        responses=[
            AIMessage("", tool_calls=[{"name": "delete_file", "args": {"path": p}, "id": p} for p in ("/a", "/b")]),
            AIMessage("done"),
        ]
    )
    tools = ToolNode([require_approval(delete_file, queue="files")])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: MessagesState) -> Any:
        calls = state["messages"][-1].tool_calls
        return [
            Send("tools", {"__type": "tool_call_with_context", "tool_call": c, "state": state}) for c in calls
        ] or END

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


@pytest.fixture
async def store(settings: Settings, redis_url: str) -> AsyncIterator[ApprovalStore]:
    redis = Redis.from_url(redis_url, decode_responses=True, client_name="test-reviewers")
    yield ApprovalStore(redis, settings)
    await redis.aclose()


@pytest.fixture(autouse=True)
def _nothing_done_yet() -> None:
    DONE.clear()


async def pending(store: ApprovalStore, count: int, timeout: float = 15.0) -> list[ApprovalRequest]:
    async with asyncio.timeout(timeout):
        while len(found := (await store.list_pending(limit=200)).items) < count:
            await asyncio.sleep(0.02)
    return found


async def test_an_interrupt_becomes_a_request_and_the_decision_resumes_the_graph(
    store: ApprovalStore, client: ApprovalClient
) -> None:
    graph = deploy_graph(InMemorySaver())
    config = {"configurable": {"thread_id": "release-7"}}
    running = asyncio.ensure_future(run_with_approvals(graph, {"service": "billing"}, config, client=client))
    [asked] = await pending(store, 1)
    assert (asked.action, asked.args, asked.queue, asked.run_id) == (
        "deploy",
        {"service": "billing", "percent": 5},
        "deploys",
        "release-7",
    )
    assert asked.context["framework"] == "langgraph" and DONE == [] and not running.done()
    await store.approve(asked.id, by="rita", edited_args={"service": "billing", "percent": 1})
    output = await asyncio.wait_for(running, 15)
    assert output.value["outcome"] == "deployed billing at 1%" and output.interrupts == ()
    assert DONE == ["deploy {'service': 'billing', 'percent': 1}"]


async def test_a_wrapped_tool_asks_for_each_parallel_call(store: ApprovalStore, client: ApprovalClient) -> None:
    graph = agent_graph()
    config = {"configurable": {"thread_id": "cleanup-3"}}
    running = asyncio.ensure_future(run_with_approvals(graph, {"messages": [("user", "tidy")]}, config, client=client))
    asked = {r.args["path"]: r for r in await pending(store, 2)}
    assert asked["/a"].queue == "files" and asked["/a"].args_schema["required"] == ["path"]
    await store.approve(asked["/a"].id, by="rita")
    await store.reject(asked["/b"].id, by="rita", reason="b is in use")
    output = await asyncio.wait_for(running, 15)
    said = {m.tool_call_id: m.content for m in output.value["messages"] if isinstance(m, ToolMessage)}
    assert said == {"/a": "deleted /a", "/b": "A person did not approve this delete_file call (rejected): b is in use"}
    assert DONE == ["delete /a"] and output.value["messages"][-1].content == "done"


PAUSE = """
import asyncio, sys
sys.path.insert(0, {root!r})
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from approvals import ApprovalClient, Settings
from approvals.integrations.langgraph import run_with_approvals
from tests.integrations.test_langgraph import deploy_graph

async def main():
    async with AsyncSqliteSaver.from_conn_string({db!r}) as saver, ApprovalClient(
        Settings(redis_url={url!r}, prefix={prefix!r})
    ) as client:
        out = await run_with_approvals(
            deploy_graph(saver), {{"service": "search"}}, {{"configurable": {{"thread_id": "release-9"}}}},
            client=client, wait=False,
        )
        print(len(out.interrupts))

asyncio.run(main())
"""


async def test_a_graph_paused_in_one_process_is_resumed_in_another(
    store: ApprovalStore, client: ApprovalClient, settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    db = str(tmp_path / "checkpoints.sqlite")
    code = PAUSE.format(root=str(ROOT), db=db, url=redis_url, prefix=settings.prefix)
    first = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE)
    printed, _ = await asyncio.wait_for(first.communicate(), 30)
    assert first.returncode == 0 and printed.decode().strip() == "1"  # paused, asked, and gone
    [asked] = await pending(store, 1)
    await store.approve(asked.id, by="rita")

    async with AsyncSqliteSaver.from_conn_string(db) as saver:
        graph = deploy_graph(saver)
        config = {"configurable": {"thread_id": "release-9"}}
        output = await asyncio.wait_for(resume_with_approvals(graph, config, client=client), 15)
        assert output.value["outcome"] == "deployed search at 5%"
        assert (await store.list_decided(limit=10)).total == 1  # asked once, across both processes
        with pytest.raises(LookupError, match="is not paused for approval"):
            await resume_with_approvals(graph, config, client=client)


async def test_a_config_without_a_thread_is_refused(client: ApprovalClient) -> None:
    with pytest.raises(ValueError, match="thread_id"):
        await run_with_approvals(deploy_graph(InMemorySaver()), {"service": "x"}, {}, client=client)
