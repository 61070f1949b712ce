"""Emails about requests: what is asked, with what, by whom, until when, and one-click decision links.

Sent with aiosmtplib. Each recipient gets a message of their own: its decision links are bound to them.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib

from .config import NotifyConfig, SmtpServer

# Links decide as the recipient, whoever opens them: the email says so.
NOTE = (
    "These links decide as you: do not forward this email. Each works once, and only while the request "
    "waits with these arguments."
)
# The outcome first, then the action (often a whole sentence) and its queue.
SUBJECTS = {
    "created": "Approval needed: {action} ({queue})",
    "reminder": "Reminder, still waiting: {action} ({queue})",
    "escalated": "Escalated, still waiting: {action} ({queue})",
    "decided": "{outcome}: {action} ({queue})",
    "expired": "Expired undecided: {action} ({queue})",
    "cancelled": "Cancelled: {action} ({queue})",
}


def render(config: NotifyConfig, to: str, payload: dict[str, Any], links: dict[str, str] | None) -> EmailMessage:
    """The message for one recipient. `links` (approve/reject URLs) only while the request can be decided."""
    request = payload["request"]
    event = payload["event"]
    outcome = {"approved": "Approved", "rejected": "Rejected"}.get(payload.get("type", ""), "Decided")
    action = request["action"] if len(request["action"]) <= 100 else request["action"][:99] + "…"
    subject = SUBJECTS.get(event, "{action} ({queue})").format(action=action, queue=request["queue"], outcome=outcome)
    args = json.dumps(request.get("args", {}), indent=2, ensure_ascii=False, default=str)
    context = request.get("context") or {}
    facts = [
        ("Action", request["action"]),
        ("Queue", request["queue"]),
        ("Agent", request.get("agent_id") or request.get("requested_by") or "-"),
        ("Task", context.get("task") if isinstance(context, dict) else None),
        ("Run", request.get("run_id")),
        ("Decide by", _when(request.get("expires_at")) if event in ("created", "reminder", "escalated") else None),
        ("By", payload.get("actor") if event not in ("created",) else None),
        ("Reason", payload.get("reason")),
    ]
    facts += _more_context(context, {str(v) for _, v in facts if v})
    facts = [(k, str(v)) for k, v in facts if v]
    text = [subject, ""] + [f"{k}: {v}" for k, v in facts] + ["", "Arguments:", args, ""]
    if links:
        text += [f"Approve: {links['approve']}", f"Reject (you will be asked why): {links['reject']}", ""]
        text += [NOTE]
    text += [f"The request on the dashboard: {request['url']}"]
    rows = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    buttons = ""
    if links:
        buttons = (
            f"<p><a href='{html.escape(links['approve'])}' style='background:#177245;color:#fff;padding:8px 14px;"
            f"text-decoration:none;border-radius:6px'>Approve</a> &nbsp; <a href='{html.escape(links['reject'])}' "
            "style='background:#b3261e;color:#fff;padding:8px 14px;text-decoration:none;border-radius:6px'>Reject</a>"
            f"</p><p style='color:#555;font-size:12px'>{html.escape(NOTE)} You will be asked to confirm.</p>"
        )
    body = (
        f"<h2 style='font-family:sans-serif'>{html.escape(subject)}</h2><table>{rows}</table>"
        f"<h3>Arguments</h3><pre>{html.escape(args)}</pre>{buttons}"
        f"<p><a href='{html.escape(request['url'])}'>Open the request on the dashboard</a></p>"
    )
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = config.email_from, to, f"[approvals] {subject}"
    message["Date"], message["Message-ID"] = formatdate(localtime=False), make_msgid(domain="approvals")
    message["X-Approvals-Delivery"] = payload["delivery_id"]
    message.set_content("\n".join(text))
    message.add_alternative(f"<html><body style='font-family:sans-serif'>{body}</body></html>", subtype="html")
    return message


def test_message(config: NotifyConfig, to: str) -> EmailMessage:
    """What `approvals notify test` sends: proof that the server takes mail for this address."""
    message = EmailMessage()
    message["From"], message["To"] = config.email_from, to
    message["Subject"] = "[approvals] Test message: this address gets approval requests"
    message["Date"], message["Message-ID"] = formatdate(localtime=False), make_msgid(domain="approvals")
    message.set_content(
        "A test from `approvals notify test`: the mail server took this message for you.\n\n"
        f"Requests will link to {config.public_url}; if that is not where the dashboard is, set APPROVALS_PUBLIC_URL."
    )
    return message


async def send(smtp: SmtpServer, message: EmailMessage, timeout: float) -> str | None:
    """Send one message on a connection of its own; None when the server took it, else what went wrong."""
    try:
        await aiosmtplib.send(message, **_options(smtp), timeout=timeout)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        return _said(error)
    return None


class Mailer:
    """Sends through up to `size` connections kept open to the mail server, opened as needed.

    A new connection costs a handshake (TLS, EHLO, login: tens of milliseconds, a whole 45 ms with
    aiosmtpd on loopback); a kept one, a few. A connection the server closed meanwhile is opened again,
    and the message sent on it, once.
    """

    def __init__(self, smtp: SmtpServer, timeout: float, size: int = 8) -> None:
        self.smtp, self.timeout = smtp, timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: list[aiosmtplib.SMTP] = []

    async def send(self, message: EmailMessage) -> str | None:
        """None when the server took the message, else what went wrong."""
        async with self._slots:
            if self._idle:
                client = self._idle.pop()
                try:
                    await client.send_message(message)
                except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                    client.close()  # the server closed it meanwhile: on a new one, below
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                    client.close()
                    return _said(error)
                except BaseException:  # cancelled mid-send: the connection is in no state to reuse
                    client.close()
                    raise
                else:
                    self._idle.append(client)
                    return None
            client = aiosmtplib.SMTP(**_options(self.smtp), timeout=self.timeout)
            try:
                await client.connect()
                await client.send_message(message)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                client.close()
                return _said(error)
            except BaseException:
                client.close()
                raise
            self._idle.append(client)
            return None

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(client) for client in idle))


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()


def _options(smtp: SmtpServer) -> dict[str, Any]:
    return {"hostname": smtp.hostname, "port": smtp.port, "username": smtp.username, "password": smtp.password,
            "use_tls": smtp.use_tls, "start_tls": smtp.start_tls}  # fmt: skip


def _said(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _more_context(context: Any, shown: set[str], most: int = 6) -> list[tuple[str, Any]]:
    """The agent's context beyond what the facts already say, as facts: its short plain values (cut)."""
    if not isinstance(context, dict):
        return []
    plain = [(k, v) for k, v in context.items()
             if isinstance(v, (str, int, float)) and v != "" and str(v) not in shown]  # fmt: skip
    return [(str(k).replace("_", " ").capitalize()[:40], str(v)[:200]) for k, v in plain[:most]]


def _when(at: Any) -> str | None:
    if not isinstance(at, (int, float)):
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
