"""The demo's mailbox page: the emails the demo's own SMTP server caught, with their links clickable.

`approvals demo` sends its notifications to a MailCatcher on loopback instead of a mail server, so a
newcomer sees what reviewers would get, and can decide a request from an email's link, without any
mail account. Only the demo adds this page.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from approvals.notify.mailcatcher import MailCatcher

from .. import appkeys
from ..access.auth import require_user
from ..http.render import render

MAILBOX: web.AppKey[MailCatcher] = web.AppKey("demo_mailbox")
_URL = re.compile(r"https?://[^\s<>\"']+")


def setup_mailbox(app: web.Application, mailbox: MailCatcher) -> None:
    app[MAILBOX] = mailbox
    app.router.add_get("/demo/mail", mailbox_page)
    app.router.add_get("/demo/mail/{number:[0-9]{1,9}}", mail_html)
    aiohttp_jinja2.get_env(app).globals["demo_mailbox"] = True  # the menu shows "Mail"


async def mailbox_page(request: web.Request) -> web.Response:
    """The caught mails addressed to the signed-in user: their links decide as that user, so nobody else's."""
    user = require_user(request)
    mine = (user.email or "").lower()
    base = request.app[appkeys.SETTINGS].notify.public_url + "/"
    mails = [
        {
            "number": m.number,
            "html": bool(m.html),
            "subject": m.subject,
            "to": ", ".join(m.to),
            "at": m.at,
            "lines": [_pieces(line, base) for line in m.text.splitlines()],
        }
        for m in reversed(request.app[MAILBOX].mails)
        if mine and mine in (to.lower() for to in m.to)
    ]
    return render(request, "mailbox.html", {"mails": mails, "address": user.email})


# The mail's own HTML, framed in the mailbox page: no script, no request to anywhere, inline styles (as
# mail clients allow); its links open in the whole window, as from a mail client.
MAIL_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; frame-ancestors 'self'"


async def mail_html(request: web.Request) -> web.Response:
    """One caught mail's HTML part, as a reviewer's mail client shows it (only to whom it was sent)."""
    user = require_user(request)
    number, mine = int(request.match_info["number"]), (user.email or "").lower()
    for mail in request.app[MAILBOX].mails:
        if mail.number == number and mine and mine in (to.lower() for to in mail.to) and mail.html:
            html = mail.html.replace("<html>", '<html><head><base target="_top"></head>', 1)
            return web.Response(text=html, content_type="text/html", headers={"Content-Security-Policy": MAIL_CSP})
    raise web.HTTPNotFound(text="No such mail in your demo mailbox (it keeps the last 200)")


def _pieces(line: str, base: str) -> list[dict[str, Any]]:
    """A line of text as plain pieces and links to this site (shortened), for the template to print and link.

    Only this site's addresses become links: an agent's arguments could hold any URL.
    """
    pieces: list[dict[str, Any]] = []
    last = 0
    for match in _URL.finditer(line):
        url = match.group(0)
        if not url.startswith(base):
            continue
        shown = url if len(url) <= 72 else url[:60] + "…"
        pieces += [{"text": line[last : match.start()]}, {"text": shown, "href": url}]
        last = match.end()
    return [*pieces, {"text": line[last:]}]
