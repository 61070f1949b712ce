"""Every Redis key and channel name the approval core uses, built in one place from the prefix.

Scripts receive all their keys through KEYS and never build names themselves, so a prefix with a
hash tag (`{apr}:`) is all Redis Cluster needs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    def request(self, request_id: str) -> str:
        """Hash: the request and, once decided, its decision."""
        return f"{self.prefix}req:{request_id}"

    def pending(self, queue: str | None = None) -> str:
        """Sorted set of pending ids by created_at, for one queue or (None) for all queues."""
        return f"{self.prefix}pending" if queue is None else f"{self.prefix}pending:{queue}"

    def history(self, queue: str | None = None) -> str:
        """Sorted set of decided ids by decided_at, for one queue or (None) for all queues."""
        return f"{self.prefix}history" if queue is None else f"{self.prefix}history:{queue}"

    def idempotency(self, scope: str, key: str) -> str:
        """String: the request id an idempotency key belongs to, within its owner's scope (a run, or the
        requester), so nobody else's key can collide with it. The scope is length-prefixed: no two
        (scope, key) pairs share a name."""
        return f"{self.prefix}idem:{len(scope)}:{scope}:{key}"

    @property
    def expiry(self) -> str:
        """Sorted set of pending ids by expires_at: the sweeper's index."""
        return f"{self.prefix}expiry"

    @property
    def queues(self) -> str:
        """Set of every queue name that has had a request."""
        return f"{self.prefix}queues"

    @property
    def events(self) -> str:
        """Stream: the audit log and live feed."""
        return f"{self.prefix}events"

    @property
    def notify_lanes(self) -> str:
        """Sorted set: each receiver's lane (a hash of its target) by when its earliest delivery is due
        (never later than that; a lease finds the true time)."""
        return f"{self.prefix}notify:lanes"

    def notify_lane(self, lane: str) -> str:
        """Sorted set: one receiver's delivery ids by when they are next due (sent, retried, or re-tried
        after a sender died holding them)."""
        return f"{self.prefix}notify:lane:{lane}"

    def notify_done(self, delivery_id: str) -> str:
        """String with a TTL: a delivery sent or given up on, so that its event read again does not make it anew."""
        return f"{self.prefix}notify:done:{delivery_id}"

    def notify_delivery(self, delivery_id: str) -> str:
        """Hash: one notification delivery (its target, body and attempts), until it is sent or gives up."""
        return f"{self.prefix}notify:delivery:{delivery_id}"

    @property
    def notify_timers(self) -> str:
        """Sorted set: 'remind:<id>' / 'escalate:<id>' by when they fire; whoever removes one fires it."""
        return f"{self.prefix}notify:timers"

    @property
    def refused_counts(self) -> str:
        """Hash: refused decision attempts ever noted, by where they came from (email, slack)."""
        return f"{self.prefix}refused:counts"

    @property
    def refused_recent(self) -> str:
        """List: the latest refused decision attempts (JSON audit entries), newest first, for the Ops page."""
        return f"{self.prefix}refused:recent"

    @property
    def notify_failures(self) -> str:
        """List: the latest deliveries that gave up (JSON), newest first, for the Ops page."""
        return f"{self.prefix}notify:failures"

    @property
    def link_key(self) -> str:
        """String: the key that signs one-click decision links (made once, at random; never in the repo)."""
        return f"{self.prefix}notify:link-key"

    def link_used(self, nonce: str) -> str:
        """String: set when a decision link is used, until it would have expired: each link works once."""
        return f"{self.prefix}notify:link-used:{nonce}"

    def slack_messages(self, request_id: str) -> str:
        """Hash: configured channel -> the Slack message about a request there ({"channel", "ts"} JSON), so
        later events update it; expires with the request."""
        return f"{self.prefix}notify:slack:{request_id}"

    def slack_seen(self, signature: str) -> str:
        """String with a TTL: a Slack payload's signature, set when it is first handled: a replay is refused."""
        return f"{self.prefix}notify:slack-seen:{signature}"

    def user_email(self, email: str) -> str:
        """String: the user name of the reviewer with this email address (lowercase)."""
        return f"{self.prefix}user-email:{email.lower()}"

    @property
    def notify_counts(self) -> str:
        """Hash: '<channel>:<delivered|retried|failed>' -> count, for /metrics."""
        return f"{self.prefix}notify:counts"

    @property
    def counts(self) -> str:
        """Hash: '<queue>:<created|approved|rejected|expired|cancelled|withdrawn>' -> count, for metrics."""
        return f"{self.prefix}counts"

    @property
    def reviewer_counts(self) -> str:
        """Hash: '<reviewer>\\n<approved|rejected>' -> count: people's decisions per reviewer, for metrics."""
        return f"{self.prefix}counts:reviewers"

    @property
    def processes(self) -> str:
        """Hash: process id -> heartbeat JSON (waiting coroutines, last seen)."""
        return f"{self.prefix}processes"

    def user(self, name: str) -> str:
        """Hash: a dashboard user (password hash, role, queues)."""
        return f"{self.prefix}user:{name}"

    @property
    def users(self) -> str:
        """Set of user names."""
        return f"{self.prefix}users"

    def token(self, digest: str) -> str:
        """Hash: an API token, by the SHA-256 of its secret (the secret itself is never stored)."""
        return f"{self.prefix}token:{digest}"

    def session(self, session_id: str) -> str:
        """Hash with a TTL: a browser session (user, CSRF token)."""
        return f"{self.prefix}session:{session_id}"

    def refused_from(self, address: str) -> str:
        """Counter with a TTL: refused decision attempts (email links, Slack) noted from one client address."""
        return f"{self.prefix}refused-from:{address}"

    def login_attempts(self, who: str) -> str:
        """Counter with a TTL: failed logins per client address and per user name."""
        return f"{self.prefix}login:{who}"

    def run(self, run_id: str) -> str:
        """Hash: an agent run (task, profile, status, result, worker, attempts)."""
        return f"{self.prefix}run:{run_id}"

    def run_steps(self, run_id: str) -> str:
        """List: the run's steps as JSON, in order."""
        return f"{self.prefix}run:{run_id}:steps"

    def run_requests(self, run_id: str) -> str:
        """Sorted set: the approval requests a run made, by creation time (written by the create script)."""
        return f"{self.prefix}run:{run_id}:requests"

    def runs_in_state(self, status: str) -> str:
        """Sorted set of run ids in one state (queued, running, finished, failed, cancelled) by when they got there."""
        return f"{self.prefix}runs:{status}"

    @property
    def runs_channel(self) -> str:
        """Pub/Sub channel: `<run id>\\n<what changed>`: a step, a new state, an approval asked or decided."""
        return f"{self.prefix}runs:changed"

    @property
    def runs(self) -> str:
        """Sorted set of run ids by submission time."""
        return f"{self.prefix}runs"

    @property
    def run_queue(self) -> str:
        """Stream of submitted run ids, read by workers through one consumer group."""
        return f"{self.prefix}runs:queue"

    @property
    def decided_channel(self) -> str:
        """Pub/Sub channel: one message per request that left pending."""
        return f"{self.prefix}decided"
