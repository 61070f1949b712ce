"""What every page and every answer shares: rendering (autoescaped templates, the error middleware,
security headers), reading bodies and query parameters, and writing server-sent events.

May import: `approvals`, `web.appkeys`, `web.settings`. Nothing else of `web`: every other room
builds on this one.
"""
