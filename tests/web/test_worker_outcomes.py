"""How worker runs end, and what becomes of their requests: a person may take longer than any code
budget; only a final answer is a finished run; a request nobody will act on is withdrawn."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent_runtime import CodeAgent, MultiStepAgent, ScriptedModel
from approvals import ApprovalClient, ApprovalRequest, Status
from approvals.tool import HumanApprovalTool
from tests.conftest import eventually, until
from web.runs.store import Run, RunStatus, RunStore
from web.runs.worker import Worker


@pytest.fixture
async def runs(client: ApprovalClient) -> RunStore:
    return RunStore(client.store)


async def pending(client: ApprovalClient, count: int = 1) -> list[ApprovalRequest]:
    for _ in range(500):
        page = await client.store.list_pending()
        if page.total >= count:
            return page.items
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} approval(s) were not asked")


async def ended(runs: RunStore, run_id: str, timeout: float = 10.0) -> Run:
    await eventually(lambda: _has_ended(runs, run_id), timeout)
    return await runs.get(run_id)


async def _has_ended(runs: RunStore, run_id: str) -> bool:
    return (await runs.get(run_id)).finished_at is not None


class Running:
    """A worker running in the background for one test."""

    def __init__(self, runs: RunStore, client: ApprovalClient, factory: Any, name: str) -> None:
        self.worker = Worker(runs, client, factory, visibility_timeout=30, name=name)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Worker:
        self.task = asyncio.create_task(self.worker.run())
        return self.worker

    async def __aexit__(self, *exc: object) -> None:
        self.worker.stop()
        assert self.task is not None
        await self.task
        await self.worker.drain(0)


ASK = "```python\nanswer = human_approval('ship it')\nprint(answer)\n```"
FINISH = "```python\nfinal_answer(answer)\n```"


def budgeted(client: ApprovalClient) -> MultiStepAgent:
    """A CodeAgent whose code budget (0.2 s) is far shorter than the reviewer takes."""
    model = ScriptedModel(lambda messages: FINISH if "Observation" in str(messages[-1]) else ASK)
    return CodeAgent([HumanApprovalTool(client)], model, executor_timeout=0.2, max_operations=10_000)


async def test_a_reviewer_slower_than_the_code_budget_finishes_the_run_with_one_request(
    client: ApprovalClient, runs: RunStore
) -> None:
    async with Running(runs, client, budgeted, "w"):
        run = await runs.submit("ship the release", "x")
        [request] = await pending(client)
        await asyncio.sleep(1.2)  # six budgets
        await client.store.approve(request.id, by="alice")
        done = await ended(runs, run.id)
    assert (done.status, done.result, done.error) == (RunStatus.FINISHED, "approved: ship it", None)
    assert [s["error"] for s in await runs.steps(run.id)] == [None, None]
    assert (await client.store.list_decided()).total == 1


def never_finishes(client: ApprovalClient) -> MultiStepAgent:
    """Asks, then keeps failing: it never gives a final answer of its own."""

    def reply(messages: list[dict[str, Any]]) -> str:
        asked = any("Observation" in str(m["content"]) for m in messages)
        return "```python\n1/0\n```" if asked else ASK

    model = ScriptedModel(reply)
    return CodeAgent([HumanApprovalTool(client)], model, max_steps=3)


async def test_a_run_without_a_final_answer_fails_and_says_why(client: ApprovalClient, runs: RunStore) -> None:
    async with Running(runs, client, never_finishes, "w"):
        run = await runs.submit("try hard", "x")
        [request] = await pending(client)
        await client.store.reject(request.id, by="alice", reason="no")
        done = await ended(runs, run.id)
    assert (done.status, done.error) == (RunStatus.FAILED, "the agent gave no final answer within its 3 steps")
    assert done.result is not None  # what the model said when asked to conclude, kept for the record


def waits(client: ApprovalClient) -> MultiStepAgent:
    return CodeAgent([HumanApprovalTool(client, timeout=3600)], ScriptedModel([ASK, FINISH]))


async def test_a_runs_time_limit_includes_waiting_and_withdraws_its_request(
    client: ApprovalClient, runs: RunStore
) -> None:
    async with Running(runs, client, waits, "w"):
        run = await runs.submit("ship", "x", timeout=1.0)
        [request] = await pending(client)
        assert request.expires_at <= run.created_at + 2.0 + 0.01  # cut to the run's limit (and a second)
        done = await ended(runs, run.id)
    assert (done.status, done.error) == (
        RunStatus.FAILED,
        "the run reached its time limit (1 s, waits for people included)",
    )
    closed = await client.get(request.id)
    assert (closed.status, closed.reason) == (
        Status.WITHDRAWN, "the agent run reached its time limit while waiting",
    )  # fmt: skip
    assert (await client.store.list_pending()).total == 0


async def test_a_run_queued_past_its_time_limit_fails_without_starting(client: ApprovalClient, runs: RunStore) -> None:
    run = await runs.submit("ship", "x", timeout=0.05)
    await asyncio.sleep(0.1)
    async with Running(runs, client, waits, "w"):
        done = await ended(runs, run.id)
    assert done.status is RunStatus.FAILED and done.error is not None and "passed before" in done.error
    assert (await client.store.list_pending()).total == 0


class Wavering:
    """An agent factory whose model asks something different on each attempt of a run, as a real model may."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self, client: ApprovalClient) -> MultiStepAgent:
        self.attempts += 1
        first = self.attempts == 1

        def reply(messages: list[dict[str, Any]]) -> str:
            observations = sum("Observation" in str(m["content"]) for m in messages)
            if observations == 0:
                return "```python\nfirst = human_approval('step one')\nprint(first)\n```"
            if observations == 1:  # the first attempt asks at step 2; later ones think instead
                return ASK if first else "```python\nprint('thinking')\n```"
            if observations == 2 and not first:
                return "```python\nanswer = human_approval('another idea')\nprint(answer)\n```"
            return FINISH

        return CodeAgent([HumanApprovalTool(client)], ScriptedModel(reply), name="wavering")


async def test_a_re_run_that_takes_another_path_withdraws_what_it_left_behind(
    client: ApprovalClient, runs: RunStore
) -> None:
    factory = Wavering()
    async with Running(runs, client, factory, "first"):
        run = await runs.submit("decide", "x")
        [step_one] = await pending(client)
        await client.store.approve(step_one.id, by="alice")
        [left_behind] = await pending(client)
        assert left_behind.action == "ship it"
    # handed back: still pending, for the next attempt to attach to
    assert (await client.get(left_behind.id)).pending

    async with Running(runs, client, factory, "second"):
        await eventually(lambda: _asked(client, "another idea"))
        withdrawn = await client.get(left_behind.id)
        assert withdrawn.status is Status.WITHDRAWN
        assert withdrawn.reason == "the run went past step 2 without waiting for it (it took another path)"
        [idea] = await pending(client)
        await client.store.approve(idea.id, by="alice")
        done = await ended(runs, run.id)
    assert (done.status, done.attempts) == (RunStatus.FINISHED, 2)
    assert (await client.store.list_decided()).total == 3  # step one (reattached, asked once), and the two


async def _asked(client: ApprovalClient, action: str) -> bool:
    return any(r.action == action for r in (await client.store.list_pending()).items)


def waffles(client: ApprovalClient) -> MultiStepAgent:
    """Asks at step 1 with arguments that change on each attempt (a model is not deterministic)."""
    waffles.attempts = getattr(waffles, "attempts", 0) + 1  # type: ignore[attr-defined]
    code = f"```python\nanswer = human_approval('refund {10 * waffles.attempts} EUR')\nprint(answer)\n```"  # type: ignore[attr-defined]
    model = ScriptedModel(lambda messages: FINISH if "Observation" in str(messages[-1]) else code)
    return CodeAgent([HumanApprovalTool(client)], model)


async def test_a_re_run_asking_otherwise_at_the_same_step_supersedes_its_first_request(
    client: ApprovalClient, runs: RunStore
) -> None:
    waffles.attempts = 0  # type: ignore[attr-defined]
    async with Running(runs, client, waffles, "first"):
        run = await runs.submit("refund", "x")
        [first] = await pending(client)
    async with Running(runs, client, waffles, "second") as second:
        await until(lambda: second.active == 1)
        await eventually(lambda: _asked(client, "refund 20 EUR"))
        replaced = await client.get(first.id)
        assert replaced.status is Status.WITHDRAWN and "superseded" in (replaced.reason or "")
        [current] = await pending(client)
        await client.store.approve(current.id, by="alice")
        done = await ended(runs, run.id)
    assert (done.status, done.result) == (RunStatus.FINISHED, "approved: refund 20 EUR")
