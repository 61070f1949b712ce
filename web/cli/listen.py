"""Saying plainly that the port is taken, before anything starts (rather than a traceback after)."""

from __future__ import annotations

import errno
import socket

from approvals import InvalidSettings


def ensure_port_free(host: str, port: int) -> None:
    """InvalidSettings if nothing can listen on host:port (in use, or not an address of this machine)."""
    try:
        with socket.create_server((host, port), reuse_port=False):
            pass
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise InvalidSettings(
                "--port", f"{host}:{port} is in use (another approvals running?); choose another with --port"
            ) from None
        raise InvalidSettings("--host", f"cannot listen on {host}:{port} ({error.strerror or error})") from None
