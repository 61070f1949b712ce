"""`ApprovalClient`: what an agent process uses to ask for approval and await the answer.

It owns its Redis connections (a bounded command pool and one Pub/Sub connection, whatever the
number of waiters) and its background tasks; use one per process, inside `async with`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from redis.exceptions import RedisError

from agent_runtime.budget import waiting_for_person

from .asking import Asking
from .connections import command_client, pubsub_client
from .errors import ApprovalError, ClientClosed, StoreUnavailable
from .expiry import ExpirySweeper
from .heartbeat import Heartbeat
from .models import ApprovalRequest, Decision
from .settings import Settings
from .store import ApprovalStore
from .waiting import DecisionWaiter


class ApprovalClient:
    """Create approval requests and wait for their decisions without a thread or connection per waiter.

    `requested_by` names this agent process in every request it makes (reviewers see it, and it may
    not decide its own requests). `sweep_expired` runs an expiry sweeper in this process too;
    `heartbeat` (a role name, or None for none) publishes this process's waiting count for ops.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        requested_by: str | None = None,
        sweep_expired: bool = True,
        heartbeat: str | None = "agent",
    ) -> None:
        self.settings = Settings.from_env() if settings is None else settings
        self.requested_by = requested_by
        self._sweep_expired = sweep_expired
        self._heartbeat_role = heartbeat
        self._store: ApprovalStore | None = None
        self._waiter: DecisionWaiter | None = None
        self._sweeper: ExpirySweeper | None = None
        self._heartbeat: Heartbeat | None = None
        self._asking = Asking()  # request_approval calls in progress, and the withdrawals they started

    async def __aenter__(self) -> ApprovalClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        redis = command_client(self.settings)
        try:
            await redis.ping()
        except (RedisError, OSError) as error:
            await redis.aclose()
            raise StoreUnavailable(self.settings.display_url, error) from error
        self._store = ApprovalStore(redis, self.settings)
        try:
            self._waiter = DecisionWaiter(self._store, pubsub_client(self.settings))
            await self._waiter.start()
            if self._sweep_expired:
                self._sweeper = ExpirySweeper(self._store)
                self._sweeper.start()
            if self._heartbeat_role is not None:
                self._heartbeat = Heartbeat(self._store, lambda: self.waiting, self._heartbeat_role)
                self._heartbeat.start()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            await self._heartbeat.aclose()
        if self._sweeper is not None:
            await self._sweeper.aclose()
        if self._waiter is not None:
            await self._waiter.aclose()  # every wait ends (ClientClosed) ...
        await self._asking.settle()  # ... and withdraws its request while the store is still open
        if self._store is not None:
            await self._store.aclose()
            await self._store.redis.aclose()
        self._store = self._waiter = self._sweeper = self._heartbeat = None

    def report(self, details: Callable[[], dict[str, Any]]) -> None:
        """Add what `details()` returns to this process's heartbeat (a worker reports its runs)."""
        if self._heartbeat is not None:
            self._heartbeat.details = details
            self._heartbeat.beat_soon()

    def beat_soon(self) -> None:
        """What this process reports changed: send its heartbeat within a second, not at the next interval."""
        if self._heartbeat is not None:
            self._heartbeat.beat_soon()

    @property
    def store(self) -> ApprovalStore:
        """The store behind this client, for listing and deciding (the reviewer's side)."""
        if self._store is None:
            raise ClientClosed()
        return self._store

    @property
    def waiter(self) -> DecisionWaiter:
        if self._waiter is None:
            raise ClientClosed()
        return self._waiter

    @property
    def waiting(self) -> int:
        """Requests this process is waiting on right now."""
        return 0 if self._waiter is None else self._waiter.waiting

    async def request_approval(
        self,
        action: str,
        args: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        context: Mapping[str, Any] | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        args_schema: Mapping[str, Any] | None = None,
        supersede: bool = False,
        requested_by: str | None = None,
        idempotency_scope: str | None = None,
    ) -> Decision:
        """Ask, then wait for the decision. `timeout` is how long reviewers have; past it, a denial.

        With an `idempotency_key`, a restarted agent asking again gets the same request, and its
        decision at once if a reviewer acted meanwhile. If this wait stops without a decision (the
        caller is cancelled, or the client closes), the request is withdrawn at once, so nobody
        approves what will not be acted on; see `approvals.asking` for the one exception. The wait
        is not counted by an agent's code budget (it is a person's time, not the code's).
        `requested_by` overrides the client's for this request (a worker asks for the run's submitter);
        `idempotency_scope` says whose key it is (default: the requester's).
        """
        store, waiter, request_id = self.store, self.waiter, uuid.uuid4().hex
        # The id is known before the request is written: the wait is registered first (no decision
        # can slip by, and nothing needs reading back), and a cancel mid-way still finds it.
        future = waiter.expect(request_id)
        with self._asking.in_progress():
            try:
                request = await store.create(
                    action,
                    args,
                    queue=queue,
                    timeout=timeout,
                    agent_id=agent_id,
                    run_id=run_id,
                    requested_by=requested_by or self.requested_by,
                    idempotency_key=idempotency_key,
                    context=context,
                    args_schema=args_schema,
                    supersede=supersede,
                    request_id=request_id,
                    idempotency_scope=idempotency_scope,
                )
            except ApprovalError:
                waiter.forget(request_id, future)
                raise  # refused (bad input, a conflict): nothing was written
            except BaseException as error:
                waiter.forget(request_id, future)
                await self._asking.give_up(store, request_id, error)  # the create may have gone through
                raise
            try:
                if request.id != request_id:  # the idempotency key names an earlier request: wait for it
                    waiter.forget(request_id, future)
                    return request.decision() or await self.wait(request.id)
                with waiting_for_person():
                    decision = await waiter.until_decided(request, future)
            except BaseException as error:
                await self._asking.give_up(store, request.id, error)
                raise
            finally:
                waiter.forget(request_id, future)
        assert decision is not None  # no deadline was given: only a decision ends the wait
        return decision

    async def create(
        self,
        action: str,
        args: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        context: Mapping[str, Any] | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        args_schema: Mapping[str, Any] | None = None,
        supersede: bool = False,
        idempotency_scope: str | None = None,
    ) -> ApprovalRequest:
        return await self.store.create(
            action,
            args,
            queue=queue,
            timeout=timeout,
            agent_id=agent_id,
            run_id=run_id,
            requested_by=self.requested_by,
            idempotency_key=idempotency_key,
            context=context,
            args_schema=args_schema,
            supersede=supersede,
            idempotency_scope=idempotency_scope,
        )

    async def wait(self, request_id: str, timeout: float | None = None) -> Decision:
        """Await the decision. `timeout` bounds this wait only (`WaitTimeout`; the request stays pending).

        A person's time, not code's: an agent's code budget does not count it.
        """
        with waiting_for_person():
            return await self.waiter.wait(request_id, timeout)

    async def get(self, request_id: str) -> ApprovalRequest:
        return await self.store.get(request_id)

    async def cancel(self, request_id: str, reason: str | None = None) -> Decision:
        """Withdraw a request this agent no longer needs."""
        return await self.store.cancel(request_id, by=self.requested_by or "agent", reason=reason)
