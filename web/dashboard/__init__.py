"""The reviewers' pages, server-rendered and working without JavaScript: the queue and its live
rows (`queue`, `feed`), one request and deciding it (`request`), `history`, `ops`, and the runs
pages (`runs`, which draw the API's run stream as HTML).

May import: `approvals`, `web.api` (the JSON shapes and the run stream it shares), `web.runs`,
`web.access`, `web.http`, `web.appkeys`.
"""
