"""`ApprovalClient`: what an agent process uses to ask for approval and await the answer.

It owns its Redis connections (a bounded command pool and one Pub/Sub connection, whatever the
number of waiters) and its background tasks; use one per process, inside `async with`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from redis.exceptions import RedisError

from agent_runtime.budget import waiting_for_person

from .asking import withdrawal_reason
from .connections import command_client, pubsub_client
from .errors import AlreadyDecided, ClientClosed, RequestNotFound, StoreUnavailable
from .expiry import ExpirySweeper
from .heartbeat import Heartbeat
from .models import ApprovalRequest, Decision
from .settings import Settings
from .store import ApprovalStore
from .waiting import DecisionWaiter

log = logging.getLogger("approvals.client")

WITHDRAW_GRACE = 5.0  # seconds closing waits for the requests its waiters stopped waiting for to be withdrawn


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
        self._asking: set[asyncio.Future[None]] = set()  # request_approval calls between create and return

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
        if self._asking:  # ... and withdraws its request while the store is still open
            await asyncio.wait(self._asking, timeout=WITHDRAW_GRACE)
        if self._store is not None:
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
    ) -> Decision:
        """Ask, then wait for the decision. `timeout` is how long reviewers have; past it, a denial.

        With an `idempotency_key`, a restarted agent asking again gets the same request, and its
        decision at once if a reviewer acted meanwhile. If this wait stops without a decision (the
        caller is cancelled, or the client closes), the request is withdrawn at once, so nobody
        approves what will not be acted on; see `approvals.asking` for the one exception. The wait
        is not counted by an agent's code budget (it is a person's time, not the code's).
        """
        request = await self.create(
            action,
            args,
            queue=queue,
            timeout=timeout,
            idempotency_key=idempotency_key,
            context=context,
            agent_id=agent_id,
            run_id=run_id,
            args_schema=args_schema,
            supersede=supersede,
        )
        if (decision := request.decision()) is not None:
            return decision
        asking = asyncio.get_running_loop().create_future()
        self._asking.add(asking)
        try:
            return await self.wait(request.id)
        except BaseException as error:
            if (reason := withdrawal_reason(error)) is not None:
                await self._withdraw(request.id, reason)
            raise
        finally:
            asking.set_result(None)
            self._asking.discard(asking)

    async def _withdraw(self, request_id: str, reason: str) -> None:
        """Withdraw, even from a cancelled task: the withdrawal runs to its end whatever happens here."""
        store = self._store
        if store is None:
            return

        async def withdraw() -> None:
            try:
                await store.withdraw(request_id, reason=reason)
            except (AlreadyDecided, RequestNotFound):
                pass  # decided a moment ago: that decision stands
            except (RedisError, OSError) as error:
                log.warning("approvals: cannot withdraw request %s (%s); it expires at its deadline", request_id, error)

        task = asyncio.ensure_future(withdraw())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait([task], timeout=WITHDRAW_GRACE)  # cancelled again: still finish it
            raise

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
