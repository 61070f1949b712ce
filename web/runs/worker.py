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
import time
from typing import Any

from redis.exceptions import RedisError, ResponseError

from agent_runtime import ActionStep, PlanningStep
from agent_runtime.agents import RunResult
from approvals import ApprovalClient
from approvals.asking import RunHolder, current_holder
from approvals.tasks import BackgroundTasks

from .feed import RunFeed
from .profiles import AgentFactory
from .store import GROUP, Run, RunNotFound, RunStatus, RunStore

log = logging.getLogger("approvals.worker")

TRIM_EVERY = 60.0  # seconds between drops of runs past retention from the indexes
MAX_ATTEMPTS = 5  # a run that keeps failing in its workers is failed after this many starts
FINISH_RETRIES = (0.05, 0.2, 1.0, 3.0, 8.0)  # seconds between tries to record a run's end


class RunStopped(BaseException):
    """This worker must not go on with the run: it was cancelled, or another worker took it over.

    A BaseException, like cancellation, so that neither the agent nor model code handles it as an error.
    """


class Worker:
    def __init__(
        self,
        runs: RunStore,
        client: ApprovalClient,
        factory: AgentFactory,
        *,
        feed: RunFeed | None = None,
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
        self._running: dict[str, asyncio.Task[Any]] = {}  # run id -> the task running it
        self._holders: dict[str, RunHolder] = {}  # run id -> what its approval requests know of its fate
        self._stopped: dict[str, bool] = {}  # run id -> acknowledge? (cancelled: yes; taken over: no)
        self._tasks = BackgroundTasks()
        self._stopping = asyncio.Event()
        self._claim_cursor = "0-0"
        self.finished = 0  # runs this worker finished, for its heartbeat and tests
        if feed is not None:
            feed.listen(self._on_run_changed)

    @property
    def active(self) -> int:
        return len(self._active)

    def details(self) -> dict[str, Any]:
        """For the process heartbeat: what `approvals status` and the ops page show of this worker."""
        return {"worker": self.name, "runs": self.active, "concurrency": self.concurrency, "finished": self.finished}

    async def run(self) -> None:
        """Take and run runs until `stop()`; then let running ones finish or hand them back."""
        await self._ensure_group()
        keeper = BackgroundTasks()  # cancelled until it ends: redis-py can swallow one cancellation
        keeper.spawn(self._keep_claims())
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
                    if entry_id in self._active:
                        continue  # our own run, idle too long (a stalled loop): claimed again, still running
                    self._active[entry_id] = run_id
                    self._tasks.spawn(self._process(entry_id, run_id))
                if entries:
                    self.client.beat_soon()
        finally:
            await keeper.aclose()

    def stop(self) -> None:
        """Take no new runs (running ones go on until `drain`)."""
        self._stopping.set()

    async def drain(self, grace: float = 10.0) -> None:
        """After `stop()`: wait up to `grace` for running runs; hand the rest back at once.

        Handed back means stopped without acknowledging and marked idle past the visibility timeout,
        so another worker takes them over on its next read, not a timeout later. A re-run does not
        ask its approvals again (idempotency keys), nor repeat approved `require_approval` calls.
        """
        await self._tasks.wait(grace)
        left = list(self._active)
        for holder in self._holders.values():
            holder.keep_pending = True  # the next worker attaches to them: withdrawing would ask twice
        await self._tasks.aclose()
        if left:
            with contextlib.suppress(RedisError, OSError):
                await self.runs.redis.xclaim(
                    self.runs.keys.run_queue, GROUP, self.name, 0, left,
                    idle=int(self.visibility_timeout * 1000) + 1, justid=True,
                )  # fmt: skip
            log.info("approvals: worker %s handed back %d run(s)", self.name, len(left))

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
            self.runs.keys.run_queue, GROUP, self.name, int(self.visibility_timeout * 1000),
            start_id=self._claim_cursor, count=count,
        )  # fmt: skip
        self._claim_cursor = reply[0]  # scans go on where they stopped: no held run hides a dead one's
        entries = [(entry_id, fields["run"]) for entry_id, fields in reply[1] if fields]
        for _, run_id in entries:
            log.info("approvals: worker %s took over run %s", self.name, run_id)
        return entries

    async def _keep_claims(self) -> None:
        """Every third of the timeout: re-claim what we hold (its idle time restarts, nobody takes it),
        and look for cancellations whose notice we missed; now and then, drop runs past retention."""
        trimmed_at = 0.0
        while True:
            await asyncio.sleep(self.visibility_timeout / 3)
            if time.monotonic() - trimmed_at > TRIM_EVERY:
                trimmed_at = time.monotonic()
                with contextlib.suppress(RedisError, OSError):
                    await self.runs.trim()
            if self._active:
                with contextlib.suppress(RedisError, OSError):
                    await self.runs.redis.xclaim(
                        self.runs.keys.run_queue, GROUP, self.name, 0, list(self._active), justid=True
                    )
                    await self._check_cancelled()

    # -- cancelling ----------------------------------------------------------------------------

    def _on_run_changed(self, run_id: str | None, change: str) -> None:
        if run_id is None:
            self._tasks.spawn(self._check_cancelled())  # notices may have been missed: read
        elif change == RunStatus.CANCELLED and run_id in self._running:
            self._stop_run(run_id, acknowledge=True)

    async def _check_cancelled(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            for run_id in await self.runs.cancelled_among(list(self._running)):
                self._stop_run(run_id, acknowledge=True)

    def _stop_run(self, run_id: str, *, acknowledge: bool) -> None:
        task = self._running.get(run_id)
        if task is not None and run_id not in self._stopped:
            self._stopped[run_id] = acknowledge
            if (holder := self._holders.get(run_id)) is not None:
                holder.keep_pending = True  # whoever cancelled the run withdraws them, in their name
            task.cancel()

    # -- running -------------------------------------------------------------------------------

    async def _process(self, entry_id: str, run_id: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running[run_id] = task
        try:
            await self._execute(run_id)
        except asyncio.CancelledError:
            if run_id not in self._stopped:
                raise  # the worker stops: not acknowledged, so another worker takes it over
            task.uncancel()  # cancelled by someone, or taken over by another worker: done with it
        except Exception:
            # Redis away for long, or a bug: leave the run unacknowledged, to be taken over and run
            # again after the visibility timeout (at most MAX_ATTEMPTS times), never stuck half-done.
            log.exception("approvals: run %s failed in its worker; it will be taken over", run_id)
            self._stopped.setdefault(run_id, False)
        finally:
            self._running.pop(run_id, None)
            self._active.pop(entry_id, None)
            self.client.beat_soon()
            acknowledge = self._stopped.pop(run_id, True)
        if acknowledge:
            with contextlib.suppress(RedisError, OSError, RunNotFound):  # else it is taken over and skipped
                await self.runs.redis.xack(self.runs.keys.run_queue, GROUP, entry_id)
                await self.runs.withdraw_approvals(run_id)

    async def _execute(self, run_id: str) -> None:
        try:
            run = await self.runs.get(run_id)
        except RunNotFound:
            return
        attempt = await self.runs.started(run_id, self.name) if run.finished_at is None else None
        if attempt is None:
            return  # cancelled while queued, or finished by a worker that died before acknowledging
        if attempt > MAX_ATTEMPTS:
            await self._finish(run, attempt, RunStatus.FAILED, error=f"gave up after {MAX_ATTEMPTS} attempts")
        elif run.deadline is not None and run.deadline <= time.time():
            error = f"its time limit ({run.timeout:g} s) passed before a worker could finish it"
            await self._finish(run, attempt, RunStatus.FAILED, error=error)
        else:
            await self._run_agent(run, attempt)

    async def _run_agent(self, run: Run, attempt: int) -> None:
        held = _Attempt(self, run, attempt)
        self._holders[run.id] = held.holder
        token = current_holder.set(held.holder)
        try:
            agent = self.factory(self.client)
            agent.add_step_callback(held.record, ActionStep)
            agent.add_step_callback(held.record, PlanningStep)
            timeout = None if run.deadline is None else max(0.001, run.deadline - time.time())
            result = await agent.arun(run.task, run_id=run.id, return_full_result=True, run_timeout=timeout)
        except RunStopped:
            return
        except Exception as error:
            await self._finish(run, attempt, RunStatus.FAILED, error=f"{type(error).__name__}: {error}")
        else:
            await self._finish(run, attempt, *_ending(result, run, agent.max_steps))
        finally:
            current_holder.reset(token)
            self._holders.pop(run.id, None)

    async def _finish(
        self, run: Run, attempt: int, status: RunStatus, result: Any = None, error: str | None = None
    ) -> None:
        """Record the end of this attempt, retrying while Redis is away (the run is done: it must not
        be lost for want of one write). Raises if Redis stays away, so the run is taken over."""
        for backoff in (*FINISH_RETRIES, None):
            try:
                outcome = await self.runs.finish(run.id, status, attempt=attempt, result=result, error=error)
                break
            except (RedisError, OSError) as failure:
                if backoff is None:
                    raise
                log.warning("approvals: cannot record the end of run %s (%s); retrying", run.id, failure)
                await asyncio.sleep(backoff)
        if outcome == "superseded":
            self._stopped[run.id] = False  # another worker runs it now: its entry is theirs
        elif outcome == "ok":
            self.finished += 1


class _Attempt:
    """One attempt at a run by this worker: what it records, and what its approval requests ask of it."""

    def __init__(self, worker: Worker, run: Run, attempt: int) -> None:
        self.worker, self.run_id, self.attempt = worker, run.id, attempt
        # The run's requests are made in the name of whoever submitted it, so they cannot approve them.
        self.holder = RunHolder(fence=self.fence, still_holds=self.still_holds, requested_by=run.submitted_by)

    def go_on_if(self, status: str) -> None:
        if status == RunStatus.RUNNING:
            return
        # Superseded (another worker took it over: it is theirs now, not to be acknowledged by us) or
        # cancelled (acknowledged; the canceller withdraws its requests in their own name).
        self.worker._stopped[self.run_id] = status != "superseded"
        self.holder.keep_pending = True
        raise RunStopped(self.run_id)

    async def record(self, step: Any) -> None:
        runs = self.worker.runs
        self.go_on_if(await runs.add_step(self.run_id, self.attempt, _step_json(step)))
        if self.attempt > 1 and isinstance(step, ActionStep):  # what a re-run passed by, nobody waits for
            await runs.withdraw_passed(self.run_id, step.step_number)

    async def fence(self) -> None:
        """After each decision, before the agent acts on it."""
        self.go_on_if(await self.worker.runs.holder_status(self.run_id, self.attempt))

    async def still_holds(self) -> bool:
        """For a wait that ended on its own: is the run still this attempt's?"""
        return await self.worker.runs.holder_status(self.run_id, self.attempt) == RunStatus.RUNNING


def _ending(result: RunResult, run: Run, max_steps: int) -> tuple[RunStatus, Any, str | None]:
    """(status, result, error): finished only with the agent's own final answer; else failed, saying why."""
    if result.state == "success":
        return RunStatus.FINISHED, result.output, None
    if result.state == "run_timeout":
        limit = f" ({run.timeout:g} s, waits for people included)" if run.timeout else ""
        return RunStatus.FAILED, None, f"the run reached its time limit{limit}"
    return RunStatus.FAILED, result.output, f"the agent gave no final answer within its {max_steps} steps"


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
