"""A console demo of the approval loop on the embedded store: no Redis server, no API key.

    python -m approvals.demo [--agents 5] [--seconds 10]

CodeAgents (scripted models) ask for approval of varied actions through HumanApprovalTool and wait
as coroutines; a scripted reviewer approves, edits, rejects or lets requests expire. The web
dashboard replaces the scripted reviewer later.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import time
from typing import Any

from agent_runtime import CodeAgent, ScriptedModel

from .client import ApprovalClient
from .settings import Settings
from .tool import HumanApprovalTool

ACTIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("email", "send_email", {"to": "customer@example.com", "subject": "Your refund"}),
    ("payments", "refund", {"order": "A-1042", "amount": 129.5, "currency": "EUR"}),
    ("ops", "restart_service", {"service": "billing-api", "region": "eu-west-1"}),
    ("ops", "delete_files", {"paths": ["/tmp/cache/a", "/tmp/cache/b"]}),
]


def demo_model(action: str) -> ScriptedModel:
    """A scripted 'LLM' that asks for approval of `action`, then reports what the reviewer said."""

    def reply(messages: list[dict[str, Any]]) -> str:
        if "Observation" not in str(messages[-1]["content"]):
            code = f"answer = human_approval({action!r})\nprint(answer)"
            return f"Thought: this is risky, ask first.\n```python\n{code}\n```"
        return "Thought: report back.\n```python\nfinal_answer(answer)\n```"

    return ScriptedModel(reply, delay=0.05)


async def ask_once(client: ApprovalClient, name: str, timeout: float) -> str:
    """One demo agent run: a CodeAgent asks for approval of a random action and reports the answer."""
    queue, action, args = random.choice(ACTIONS)
    described = f"{action} {json.dumps(args)}"
    code_agent = CodeAgent([HumanApprovalTool(client, queue=queue, timeout=timeout)], demo_model(described), name=name)
    print(f"{name:>8} asks    {described} on queue {queue!r}")
    answer: str = await code_agent.arun(f"Carry out: {described}")
    print(f"{name:>8} resumes {answer}")
    return answer


async def agent(client: ApprovalClient, name: str, until: float) -> None:
    while time.monotonic() < until:
        await ask_once(client, name, timeout=3)


async def agent_loop(client: ApprovalClient, name: str) -> None:
    """For `approvals demo`: ask every few seconds, with varied deadlines, for a person to decide."""
    while True:
        await ask_once(client, name, timeout=random.choice([60, 120, 300, 900]))
        await asyncio.sleep(random.uniform(2, 8))


async def reviewer(client: ApprovalClient, until: float) -> None:
    while time.monotonic() < until:
        await asyncio.sleep(random.uniform(0.2, 1.0))
        for request in (await client.store.list_pending(limit=5)).items:
            choice = random.random()
            if choice < 0.5:
                await client.store.approve(request.id, by="demo-reviewer")
            elif choice < 0.7:
                edited = {"action": request.args.get("action", "") + " (dry run)"}
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
