"""People and access: users, API tokens and browser sessions (`users`), who is asking and what they
may do (`auth`: the middleware, CSRF, the permission helpers), signing in and out (`login`), and
sign-in throttling (`throttle`). "Who may decide?" is answered here.

May import: `approvals`, `web.http`, `web.appkeys`, `web.settings`, and `web.runs` for its types.
"""
