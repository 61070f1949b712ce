"""Workers: take runs from the Redis stream through one consumer group and run them as coroutines.

Any number of workers on any machines share one Redis. A worker keeps the runs it holds claimed
while they run (waiting for a person can take long); a worker that dies stops doing so, and after
the visibility timeout another worker takes its runs over and runs them again with the same run id,
so the approval requests they already made are found by their idempotency keys, not asked twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

from redis.exceptions import RedisError, ResponseError

from agent_runtime import ActionStep, PlanningStep
from approvals import ApprovalClient
from approvals.tasks import BackgroundTasks

from .profiles import AgentFactory
from .runstore import GROUP, RunNotFound, RunStatus, RunStore

log = logging.getLogger("approvals.worker")


class Worker:
    def __init__(
        self,
        runs: RunStore,
        client: ApprovalClient,
        factory: AgentFactory,
        *,
        concurrency: int = 16,
        visibility_timeout: float = 30.0,
        name: str | None = None,
    ) -> None:
        self.runs = runs
        self.client = client
        self.factory = factory
        self.concurrency = concurrency
        self.visibility_timeout = visibility_timeout
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._active: dict[str, str] = {}  # stream entry id -> run id
        self._tasks = BackgroundTasks()
        self._stopping = asyncio.Event()

    @property
    def active(self) -> int:
        return len(self._active)

    async def run(self) -> None:
        """Take and run runs until `stop()`; then let running ones finish or hand them back."""
        await self._ensure_group()
        keeper = asyncio.create_task(self._keep_claims())
        try:
            while not self._stopping.is_set():
                free = self.concurrency - len(self._active)
                if free <= 0:
                    await asyncio.sleep(0.05)
                    continue
                try:
                    entries = await self._reclaim(free) or await self._read(free)
                except (RedisError, OSError) as error:
                    log.warning("approvals: worker cannot read runs (%s); retrying", error)
                    await asyncio.sleep(1)
                    continue
                for entry_id, run_id in entries:
                    self._active[entry_id] = run_id
                    self._tasks.spawn(self._process(entry_id, run_id))
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    def stop(self) -> None:
        self._stopping.set()

    async def drain(self, grace: float = 10.0) -> None:
        """After `stop()`: wait up to `grace` for running runs; the rest are handed back unacknowledged."""
        await self._tasks.wait(grace)
        await self._tasks.aclose()

    async def _ensure_group(self) -> None:
        try:
            await self.runs.redis.xgroup_create(self.runs.keys.run_queue, GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def _read(self, count: int) -> list[tuple[str, str]]:
        replies = await self.runs.redis.xreadgroup(
            GROUP, self.name, {self.runs.keys.run_queue: ">"}, count=count, block=1000
        )
        return [(entry_id, fields["run"]) for _, entries in replies or [] for entry_id, fields in entries]

    async def _reclaim(self, count: int) -> list[tuple[str, str]]:
        """Runs whose worker stopped keeping its claim for longer than the visibility timeout."""
        reply = await self.runs.redis.xautoclaim(
            self.runs.keys.run_queue, GROUP, self.name, int(self.visibility_timeout * 1000), start_id="0-0", count=count
        )
        entries = [(entry_id, fields["run"]) for entry_id, fields in reply[1] if fields]
        for _, run_id in entries:
            log.info("approvals: worker %s took over run %s", self.name, run_id)
        return entries

    async def _keep_claims(self) -> None:
        """Re-claim what we hold every third of the timeout: its idle time restarts, nobody takes it."""
        while True:
            await asyncio.sleep(self.visibility_timeout / 3)
            if self._active:
                with contextlib.suppress(RedisError, OSError):
                    await self.runs.redis.xclaim(
                        self.runs.keys.run_queue, GROUP, self.name, 0, list(self._active), justid=True
                    )

    async def _process(self, entry_id: str, run_id: str) -> None:
        try:
            await self._execute(run_id)
            await self.runs.redis.xack(self.runs.keys.run_queue, GROUP, entry_id)
        except asyncio.CancelledError:
            raise  # stopped: not acknowledged, so another worker takes it over
        except Exception:
            log.exception("approvals: run %s crashed its worker task", run_id)
        finally:
            self._active.pop(entry_id, None)

    async def _execute(self, run_id: str) -> None:
        try:
            run = await self.runs.get(run_id)
        except RunNotFound:
            return
        if run.finished_at is not None:
            return  # finished by a worker that died before acknowledging
        await self.runs.started(run_id, self.name)
        agent = self.factory(self.client)

        async def record(step: Any) -> None:
            await self.runs.add_step(run_id, _step_json(step))

        agent.add_step_callback(record, ActionStep)
        agent.add_step_callback(record, PlanningStep)
        try:
            result = await agent.arun(run.task, run_id=run_id)
        except Exception as error:
            await self.runs.finish(run_id, RunStatus.FAILED, error=f"{type(error).__name__}: {error}")
            return
        await self.runs.finish(run_id, RunStatus.FINISHED, result=result)


def _step_json(step: Any) -> dict[str, Any]:
    if isinstance(step, PlanningStep):
        return {"type": "planning", "plan": step.plan}
    return {
        "type": "action",
        "step": step.step_number,
        "model_output": step.model_output,
        "code": step.code_action,
        "observations": step.observations,
        "error": str(step.error) if step.error else None,
        "final": step.is_final_answer,
        "output": step.action_output if step.is_final_answer else None,
    }
