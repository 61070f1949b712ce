"""Server-sent events: how one is written, and how often a quiet stream says it is alive."""

from __future__ import annotations

import json

KEEPALIVE = 15.0


def sse_message(event_id: str | None, event: str, data: dict[str, object]) -> bytes:
    """One server-sent event; JSON on a single data line, so no payload can break the framing.

    Without an id the client's last event id stays as it was (for events that are not resume points).
    """
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
