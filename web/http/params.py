"""Reading query parameters the pages share: page numbers, queue filters; and the store they read."""

from __future__ import annotations

from aiohttp import web

from approvals import ApprovalStore, InvalidRequest
from approvals import validation as check

from .. import appkeys


def store_of(request: web.Request) -> ApprovalStore:
    return request.app[appkeys.CLIENT].store


def page_number(request: web.Request) -> int:
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        raise web.HTTPBadRequest(text="page must be a whole number") from None
    if not 1 <= page <= 100_000:
        raise web.HTTPBadRequest(text="page must be between 1 and 100000")
    return page


def queue_filter(request: web.Request) -> str | None:
    queue = request.query.get("queue") or None
    if queue is not None:
        try:
            check.queue_name(queue)
        except InvalidRequest as error:
            raise web.HTTPBadRequest(text=str(error)) from None
    return queue
