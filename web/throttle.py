"""Sign-in throttling that an attacker cannot turn against the people it protects.

Only failed sign-ins count, in three ways over a window (5 minutes by default, `limit` 10):
- per account and address: after `limit` failures that address may not try that account again until
  the window ends. Guessing from one place stops; the real user, elsewhere, is not locked out.
- per address: after 3 x `limit` failures, on any accounts, the address is refused. Successes never
  count, so a busy office behind one address is not refused for signing in.
- per account, from everywhere: after 10 x `limit` failures (guessing from many addresses) every
  attempt on the account waits `slow_down` seconds before its password is checked. A correct password
  still signs in, and resets the account.
A success resets its account's counts; `approvals users unlock NAME` does so for an admin. Each attempt
is counted before its password is checked (and refunded if it succeeds), so a burst of guesses sent at
once cannot slip under a limit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis

from approvals.keys import Keys


@dataclass(frozen=True, slots=True)
class Refusal:
    message: str


class LoginThrottle:
    def __init__(self, redis: Redis, keys: Keys, *, limit: int, window: float, slow_down: float = 3.0) -> None:
        self.redis, self.keys = redis, keys
        self.limit, self.window, self.slow_down = limit, window, slow_down

    def _counters(self, name: str, address: str) -> list[tuple[str, int]]:
        return [
            (self.keys.login_attempts(_pair(name, address)), self.limit),
            (self.keys.login_attempts(f"addr:{address}"), 3 * self.limit),
            (self.keys.login_attempts(_account(name)), 10 * self.limit),
        ]

    async def attempt(self, name: str, address: str) -> Refusal | None:
        """Count this attempt (as a failure until `succeeded`); a Refusal if it may not be checked now.

        An account under attack from everywhere is not refused: the attempt waits `slow_down` first.
        """
        counters = self._counters(name, address)
        async with self.redis.pipeline(transaction=True) as pipe:
            for key, _ in counters:
                pipe.incr(key)
                pipe.expire(key, int(self.window), nx=True)
            counts = (await pipe.execute())[::2]
        (pair, pair_limit), (address_key, address_limit), _ = counters
        if counts[0] > pair_limit or counts[1] > address_limit:
            await self._refund([pair, address_key, counters[2][0]])  # refused attempts are not guesses
            minutes = max(1, round(self.window / 60))
            if counts[1] > address_limit:
                return Refusal(f"Too many failed sign-ins from your address; try again in {minutes} min")
            return Refusal(f"Too many failed sign-ins for this account from here; try again in {minutes} min")
        if counts[2] > 10 * self.limit:
            await asyncio.sleep(self.slow_down)
        return None

    async def succeeded(self, name: str, address: str) -> None:
        """The password was right: this attempt was no failure, and the account starts afresh."""
        pair, address_key, account = (key for key, _ in self._counters(name, address))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(pair, account)
            pipe.decr(address_key)
            await pipe.execute()

    async def unlock(self, name: str) -> int:
        """Clear every count against `name` (the admin's way out); returns how many were cleared."""
        pattern = self.keys.login_attempts(_pair(name, "*"))
        keys = [key async for key in self.redis.scan_iter(match=_glob_escaped(pattern), count=1000)]
        keys.append(self.keys.login_attempts(_account(name)))
        cleared: int = await self.redis.delete(*keys)
        return cleared

    async def _refund(self, keys: list[str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.decr(key)
            await pipe.execute()


def _pair(name: str, address: str) -> str:
    return f"pair:{len(name)}:{name}:{address}"


def _account(name: str) -> str:
    return f"user:{len(name)}:{name}"


def _glob_escaped(pattern: str) -> str:
    """`pattern` whose trailing * is the only wildcard (names and addresses may hold glob characters)."""
    head, star = pattern[:-1], pattern[-1]
    for special in "\\[]?*":
        head = head.replace(special, "\\" + special)
    return head + star
