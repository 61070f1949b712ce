"""Demo agents: CodeAgents with scripted models whose risky tools need a person's approval.

    python -m web.cli.demo_agents [--agents 5] [--seconds 10]    # console only, a scripted reviewer
    approvals demo                                           # the dashboard: you are the reviewer

Each run picks a task, calls a tool wrapped by `require_approval` (so the request carries the exact
arguments) or asks through `HumanApprovalTool`, waits as a coroutine, and reports what happened.
No Redis server and no API key are needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import time
import uuid
from typing import Any

from agent_runtime import CodeAgent, ScriptedModel, Tool, tool
from approvals import ApprovalClient, ApprovalRequest, Settings, Status
from approvals.tool import HumanApprovalTool, require_approval

from ..runs.store import RunStore


@tool
async def send_email(to: str, subject: str, body: str) -> str:
    """Sends an email.

    Args:
        to: Recipient address.
        subject: Subject line.
        body: Message text.
    """
    return f"email to {to} sent"


@tool
async def refund(order: str, amount: float, currency: str) -> str:
    """Refunds an order.

    Args:
        order: Order id.
        amount: How much.
        currency: ISO currency code.
    """
    return f"refunded {amount} {currency} on {order}"


@tool
async def restart_service(service: str, region: str, drain_seconds: int) -> str:
    """Restarts a service.

    Args:
        service: Service name.
        region: Where.
        drain_seconds: How long to drain connections first.
    """
    return f"{service} restarted in {region}"


@tool
async def delete_files(paths: list[str]) -> str:
    """Deletes files.

    Args:
        paths: Files to delete.
    """
    return f"deleted {len(paths)} file(s)"


# (queue, tool, the code the scripted model writes, what it is in words)
TASKS: list[tuple[str, Tool | None, str, str]] = [
    (
        "email",
        send_email,
        "send_email(to='customer@example.com', subject='Your refund', body='It is on its way.')",
        "send customer@example.com an email about their refund",
    ),
    ("payments", refund, "refund(order='A-1042', amount=129.5, currency='EUR')", "refund 129.50 EUR on order A-1042"),
    (
        "ops",
        restart_service,
        "restart_service(service='billing-api', region='eu-west-1', drain_seconds=30)",
        "restart billing-api in eu-west-1",
    ),
    (
        "ops",
        delete_files,
        "delete_files(paths=['/var/cache/app/a.tmp', '/var/cache/app/b.tmp'])",
        "delete two cache files",
    ),
    (
        "default",
        None,
        "human_approval('Post the weekly status update to #general')",
        "post the weekly status update to #general",
    ),
]


def demo_model(call: str) -> ScriptedModel:
    """A scripted 'LLM': it makes the call, then reports what came back."""

    def reply(messages: list[dict[str, Any]]) -> str:
        if "Observation" not in str(messages[-1]["content"]):
            return f"Thought: this needs a person's approval.\n```python\nresult = {call}\nprint(result)\n```"
        return "Thought: report back.\n```python\nfinal_answer(result)\n```"

    return ScriptedModel(reply, delay=0.05)


async def ask_once(client: ApprovalClient, name: str, timeout: float) -> str:
    """One demo agent run, told in plain words: what it asked, what was decided, what it did next."""
    queue, risky, call, words = random.choice(TASKS)
    if risky is None:
        tools: list[Tool] = [HumanApprovalTool(client, queue=queue, timeout=timeout)]
    else:
        tools = [require_approval(risky, client=client, queue=queue, timeout=timeout)]
    agent = CodeAgent(tools, demo_model(call), name=name)
    say(name, f"asks to {words} (queue {queue}; reviewers have {timeout / 60:g} min)")
    run_id = uuid.uuid4().hex
    result = await agent.arun(f"Carry out: {call}", return_full_result=True, run_id=run_id)
    decided = await _decision_of(client, run_id)
    if decided is None or result.state != "success":
        say(name, f"stopped without a decision ({result.state})")
        return "no decision"
    outcome = decided.status.value
    who = f" by {decided.decided_by}" if decided.status.by_reviewer else ""
    approved = decided.status is Status.APPROVED
    why = f" ({decided.reason})" if decided.reason and not approved else ""
    edited = " with edits" if decided.edited_args is not None else ""
    did = f"so it went ahead: {result.output}" if approved else "so it did not"
    say(name, f"was {outcome}{edited}{who}{why}, {did}")
    return str(result.output)


def say(name: str, text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {name:>8} {text}", flush=True)


async def _decision_of(client: ApprovalClient, run_id: str) -> ApprovalRequest | None:
    """The request the agent's run made (the demo's agents ask once per run)."""
    ids = await client.store.redis.zrange(client.store.keys.run_requests(run_id), -1, -1)
    requests = await client.store.get_many(ids)
    return requests[0] if requests else None


async def agent(client: ApprovalClient, name: str, until: float) -> None:
    while time.monotonic() < until:
        await ask_once(client, name, timeout=3)


async def agent_loop(client: ApprovalClient, name: str) -> None:
    """For `approvals demo`: ask every few seconds, with varied deadlines, for a person to decide."""
    while True:
        await ask_once(client, name, timeout=random.choice([120, 300, 900, 1800]))
        await asyncio.sleep(random.uniform(2, 8))


RUN_TASKS = [
    "Archive last quarter's invoices to cold storage",
    "Rotate the staging database password",
    "Send the monthly usage report to the finance team",
    "Scale the checkout service to 6 replicas for the sale",
    "Close the stale support tickets older than 90 days",
]


MAX_ACTIVE_RUNS = 3  # the demo queues no more runs while this many are queued or running


async def run_submitter(runs: RunStore, profile: str) -> None:
    """For `approvals demo`: queue an agent run now and then, so the Runs page has something to follow,
    without piling up runs that nobody decides on while the demo is left alone."""
    while True:
        counts = await runs.counts()
        if counts["queued"] + counts["running"] < MAX_ACTIVE_RUNS:
            await runs.submit(random.choice(RUN_TASKS), profile, submitted_by="demo-agents", timeout=3600)
        await asyncio.sleep(random.uniform(15, 40))


async def reviewer(client: ApprovalClient, until: float) -> None:
    """The console demo's stand-in for a person."""
    while time.monotonic() < until:
        await asyncio.sleep(random.uniform(0.2, 1.0))
        for request in (await client.store.list_pending(limit=5)).items:
            choice = random.random()
            if choice < 0.5:
                await client.store.approve(request.id, by="demo-reviewer")
            elif choice < 0.7 and "action" in request.args:
                edited = {"action": f"{request.args['action']} (after the freeze)"}
                await client.store.approve(request.id, by="demo-reviewer", edited_args=edited)
            elif choice < 0.9:
                await client.store.reject(request.id, by="demo-reviewer", reason="not during the freeze")
            # else: leave it to expire, which the agent sees as a rejection


async def main(agents: int, seconds: float) -> None:
    until = time.monotonic() + seconds
    async with ApprovalClient(Settings(expiry_sweep_interval=0.5), requested_by="demo-agents") as client:
        review = asyncio.create_task(reviewer(client, until + 4))
        await asyncio.gather(*(agent(client, f"agent-{n}", until) for n in range(1, agents + 1)))
        review.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await review
        stats = await client.store.queue_stats()
        print("queues:", ", ".join(f"{s.queue}={s.depth} pending" for s in stats))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    asyncio.run(main(options.agents, options.seconds))
