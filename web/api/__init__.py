"""The JSON API, for agents in any language and for scripts: approvals (`approvals`), runs and
`/run-agent` (`runs`), the payload schemas that check requests and generate the OpenAPI document
(`schemas`, `openapi`), and `/metrics` with the health checks (`metrics`).

May import: `approvals`, `agent_runtime`, `web.runs`, `web.access`, `web.http`, `web.appkeys`.
"""
