"""A real SMTP server on loopback that keeps what it receives: the demo's mailbox, and the tests'.

Built on aiosmtpd's SMTP protocol served on the caller's event loop (no thread): the notifier sends
to it through aiosmtplib exactly as it would to a company's mail server.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import time
import weakref
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class CaughtMail:
    """One message as it arrived: who it was for, and the parsed message."""

    to: tuple[str, ...]
    message: EmailMessage
    at: float
    number: int = 0  # 1 for the first message this catcher took, and so on

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if isinstance(part, EmailMessage) else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if isinstance(part, EmailMessage) else ""


class MailCatcher:
    """Accepts every message on 127.0.0.1 and keeps the last `keep` of them, newest last."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, keep: int = 200) -> None:
        self.mails: deque[CaughtMail] = deque(maxlen=keep)
        self.received = 0  # every message ever taken, kept or not
        self.connections = 0  # every connection ever accepted
        self.arrived = asyncio.Condition()
        # The socket is bound now, so that the port is known (for the settings) before serving starts.
        self._socket = socket.create_server((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self._server: asyncio.Server | None = None
        self._protocols: weakref.WeakSet[SMTP] = weakref.WeakSet()

    @property
    def url(self) -> str:
        """For APPROVALS_SMTP_URL: plain SMTP (a loopback catcher has no certificate)."""
        return f"smtp://{self.host}:{self.port}?starttls=off"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._connected, sock=self._socket)

    def _connected(self) -> SMTP:
        self.connections += 1
        protocol = SMTP(self, hostname="mailcatcher")
        self._protocols.add(protocol)
        return protocol

    async def aclose(self) -> None:
        """Stop listening and drop every connection, as a server going away does."""
        for protocol in self._protocols:
            if protocol.transport is not None:
                protocol.transport.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        else:
            self._socket.close()

    async def __aenter__(self) -> MailCatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # aiosmtpd calls it so
        raw: Any = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        async with self.arrived:
            self.received += 1
            self.mails.append(CaughtMail(tuple(envelope.rcpt_tos), message, time.time(), self.received))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[CaughtMail]:
        """The mails once at least `count` have arrived (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(lambda: len(self.mails) >= count)
        return list(self.mails)
