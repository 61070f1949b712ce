"""smolagents (from PyPI) asking through the platform: its sync `agent.run`, a scripted model, a real Redis,
and decisions made from outside the agent, through the store, while the agent's thread waits."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis
from smolagents import CodeAgent, Tool, ToolCallingAgent, tool
from smolagents.models import ChatMessage, ChatMessageToolCall, ChatMessageToolCallFunction, MessageRole, Model

from agent_runtime.concurrency import run_coroutine_sync
from approvals import ApprovalClient, ApprovalRequest, ApprovalStore, Settings
from approvals.integrations.smolagents import (
    CodeTimeLimitError,
    HumanApprovalTool,
    approvals_run,
    require_approval,
)
from approvals.tool import close_default_client

SENT: list[dict[str, Any]] = []


@tool
def send_email(to: str, subject: str) -> str:
    """Send an email.

    Args:
        to: The recipient's address.
        subject: The subject line.
    """
    SENT.append({"to": to, "subject": subject})
    return f"sent to {to}"


class Scripted(Model):
    """A model that answers from a script: code for a CodeAgent, or tool calls for a ToolCallingAgent."""

    def __init__(self, replies: list[str | list[tuple[str, dict[str, Any]]]]) -> None:
        super().__init__(model_id="scripted")
        self.replies = list(replies)
        self.seen: list[list[Any]] = []

    def generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> ChatMessage:
        self.seen.append(messages)
        reply = self.replies.pop(0)
        if isinstance(reply, str):
            return ChatMessage(role=MessageRole.ASSISTANT, content=reply)
        calls = [
            ChatMessageToolCall(ChatMessageToolCallFunction(arguments=args, name=name), id=f"call_{n}", type="function")
            for n, (name, args) in enumerate(reply)
        ]
        return ChatMessage(role=MessageRole.ASSISTANT, content="", tool_calls=calls)


@pytest.fixture
async def store(settings: Settings, redis_url: str) -> AsyncIterator[ApprovalStore]:
    """The reviewers' side, on this test's loop, on connections of its own name (not the agents')."""
    redis = Redis.from_url(redis_url, decode_responses=True, client_name="test-reviewers")
    yield ApprovalStore(redis, settings)
    await redis.aclose()


@pytest.fixture
def agent_client(settings: Settings) -> Iterator[ApprovalClient]:
    """A client for the tools, not started: they start it on the process's background loop."""
    client = ApprovalClient(settings, requested_by="smol-agent")
    yield client
    run_coroutine_sync(client.aclose)


@pytest.fixture(autouse=True)
def _no_mail_yet() -> None:
    SENT.clear()


async def pending(store: ApprovalStore, count: int = 1, timeout: float = 15.0) -> list[ApprovalRequest]:
    async with asyncio.timeout(timeout):
        while len(found := (await store.list_pending(limit=200)).items) < count:
            await asyncio.sleep(0.02)
    return found


def code(source: str) -> str:
    return f"Thought: go.\n<code>\n{source}\n</code>"


async def in_thread(function: Callable[[], Any]) -> Any:
    """`function()` in a thread, as a sync program would call it, with this task's context."""
    return await asyncio.get_running_loop().run_in_executor(None, contextvars.copy_context().run, function)


async def test_a_code_agent_waits_for_a_person_and_runs_the_tool_with_the_edited_arguments(
    store: ApprovalStore, agent_client: ApprovalClient
) -> None:
    model = Scripted(
        [
            code('result = send_email(to="board@example.com", subject="Q3 figures")\nprint(result)'),
            code('final_answer(human_approval("announce the figures"))'),
        ]
    )
    agent = CodeAgent(
        tools=[require_approval(send_email, client=agent_client, queue="email"), HumanApprovalTool(agent_client)],
        model=model,
        name="reporter",
        executor_kwargs={"timeout_seconds": None},
    )
    running = asyncio.ensure_future(in_thread(lambda: agent.run("Send the Q3 figures to the board")))

    [asked] = await pending(store)
    assert (asked.action, asked.args, asked.queue) == (
        "send_email",
        {"to": "board@example.com", "subject": "Q3 figures"},
        "email",
    )
    assert (asked.agent_id, asked.requested_by) == ("reporter", "smol-agent")
    context = asked.context
    assert (context["framework"], context["agent"], context["task"], context["step"]) == (
        "smolagents",
        "reporter",
        "Send the Q3 figures to the board",
        1,
    )
    assert context["run_id"] == asked.run_id and asked.args_schema["required"] == ["to", "subject"]
    assert SENT == [] and not running.done()  # nothing sent before a person decides

    await store.approve(asked.id, by="rita", edited_args={"to": "cfo@example.com", "subject": "Q3 figures"})
    [second] = await pending(store)
    assert second.action == "announce the figures" and second.context["step"] == 2
    assert second.run_id == asked.run_id  # one run
    assert "sent to cfo@example.com" in second.context["recent_steps"][-1]["observations"]
    await store.reject(second.id, by="rita", reason="wait for the audit")
    answer = await asyncio.wait_for(running, 15)
    assert answer == "rejected: wait for the audit"
    assert SENT == [{"to": "cfo@example.com", "subject": "Q3 figures"}]  # once, as edited
    assert (await store.outcome(asked.id)) == (True, "sent to cfo@example.com")


async def test_a_tool_calling_agent_gets_a_rejection_as_an_observation_and_parallel_calls_ask_each(
    store: ApprovalStore, agent_client: ApprovalClient
) -> None:
    calls = [
        ("send_email", {"to": "a@example.com", "subject": "hi"}),
        ("send_email", {"to": "b@example.com", "subject": "hi"}),
    ]
    model = Scripted([calls, [("final_answer", {"answer": "done"})]])
    agent = ToolCallingAgent(tools=[require_approval(send_email, client=agent_client)], model=model, name="mailer")
    with approvals_run("nightly-7"):
        running = asyncio.ensure_future(in_thread(lambda: agent.run("Say hi to a and b")))
        asked = {r.args["to"]: r for r in await pending(store, 2)}  # two tool threads, both waiting
    assert {r.run_id for r in asked.values()} == {"nightly-7"}
    await store.reject(asked["a@example.com"].id, by="rita", reason="a is on leave")
    await store.approve(asked["b@example.com"].id, by="rita")
    assert await asyncio.wait_for(running, 15) == "done"
    assert SENT == [{"to": "b@example.com", "subject": "hi"}]
    said = str(model.seen[-1])
    assert "The reviewer did not approve this send_email call (rejected): a is on leave" in said
    assert "sent to b@example.com" in said


async def test_a_retried_run_reattaches_to_its_requests_and_does_not_run_an_approved_call_again(
    store: ApprovalStore, agent_client: ApprovalClient
) -> None:
    script = [code('print(send_email(to="ops@example.com", subject="restart"))'), code('final_answer("ok")')]

    def run_once() -> Any:
        agent = CodeAgent(
            tools=[require_approval(send_email, client=agent_client)],
            model=Scripted(list(script)),
            executor_kwargs={"timeout_seconds": None},
        )
        with approvals_run("job-42"):
            return agent.run("Restart the mail relay")

    first = asyncio.ensure_future(in_thread(run_once))
    [asked] = await pending(store)
    await store.approve(asked.id, by="rita")
    assert await asyncio.wait_for(first, 15) == "ok"
    assert await asyncio.wait_for(in_thread(run_once), 15) == "ok"  # the same job, run again
    assert SENT == [{"to": "ops@example.com", "subject": "restart"}]  # approved once, sent once
    assert (await store.list_decided(limit=10)).total == 1  # and asked once


async def test_code_that_smolagents_would_cut_short_is_refused_before_asking(
    store: ApprovalStore, agent_client: ApprovalClient
) -> None:
    agent = CodeAgent(
        tools=[require_approval(send_email, client=agent_client)],
        model=Scripted([code('send_email(to="x@example.com", subject="s")'), code('final_answer("gave up")')]),
    )  # smolagents' default: code stops after 30 s
    assert await asyncio.wait_for(in_thread(lambda: agent.run("mail x")), 15) == "gave up"
    step = agent.memory.steps[1]
    assert 'executor_kwargs={"timeout_seconds": None}' in str(step.error)
    assert CodeTimeLimitError.__name__ in str(step.error) or "time limit" in str(step.error)
    assert (await store.list_pending()).total == 0 and SENT == []


async def test_many_waiting_agent_threads_share_one_redis_connection(
    store: ApprovalStore, agent_client: ApprovalClient, redis_url: str
) -> None:
    agents = [
        ToolCallingAgent(
            tools=[HumanApprovalTool(agent_client, queue="ops")],
            model=Scripted(
                [[("human_approval", {"action": f"restart node {n}"})], [("final_answer", {"answer": "ok"})]]
            ),
        )
        for n in range(20)
    ]
    with concurrent.futures.ThreadPoolExecutor(20) as threads:
        loop = asyncio.get_running_loop()
        runs = [loop.run_in_executor(threads, a.run, "restart the node") for a in agents]
        requests = await pending(store, 20)
        clients = await store.redis.client_list()
        mine = [c["name"] for c in clients if c["name"].startswith("approvals:")]
        waiting = [name for name in mine if name.startswith("approvals:sub:")]
        assert len(waiting) == 1, mine  # every waiting call, on one Pub/Sub connection
        for request in requests:
            await store.approve(request.id, by="rita")
        assert await asyncio.wait_for(asyncio.gather(*runs), 15) == ["ok"] * 20
    assert (await store.list_decided(limit=50)).total == 20


def test_tools_validate_as_smolagents_tools() -> None:
    guarded = require_approval(send_email)
    assert isinstance(guarded, Tool) and isinstance(HumanApprovalTool(), Tool)
    assert (guarded.name, guarded.inputs, guarded.output_type) == ("send_email", send_email.inputs, "string")
    assert "approval" in guarded.description and guarded.wrapped is send_email


async def test_with_no_client_the_tools_ask_through_the_environments_redis(
    store: ApprovalStore, settings: Settings, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("APPROVALS_PREFIX", settings.prefix)
    agent = ToolCallingAgent(
        tools=[HumanApprovalTool(queue="ops")],
        model=Scripted([[("human_approval", {"action": "drain node 3"})], [("final_answer", {"answer": "drained"})]]),
    )
    try:
        running = asyncio.ensure_future(in_thread(lambda: agent.run("drain node 3")))
        [asked] = await pending(store)
        assert (asked.action, asked.queue, asked.context["framework"]) == ("drain node 3", "ops", "smolagents")
        await store.approve(asked.id, by="rita", edited_args={"action": "drain node 3 after 18:00"})
        assert await asyncio.wait_for(running, 15) == "drained"
        assert "approved with changes: drain node 3 after 18:00" in str(agent.memory.steps[1].observations)
    finally:
        run_coroutine_sync(close_default_client)  # the process's default client: made from this test's settings
