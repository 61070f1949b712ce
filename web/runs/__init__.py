"""Agent runs as a service, with no HTTP in it: runs kept in Redis (`store`), workers that take them
from the queue and run them (`worker`), the per-process feed of which run changed (`feed`), and the
agent profiles that build a fresh agent for each run (`profiles`). "Where does a run get picked
up?" is answered in `worker`.

May import: `approvals`, `agent_runtime`. Never `web.http`, `web.api`, `web.dashboard` or `web.access`.
"""
