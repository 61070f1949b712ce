"""The `approvals` command: serving the dashboard and API, the demo and its agents (`demo`), workers,
users and tokens (`main`), and the operations commands: status, list, show, approve, reject (`ops`).

May import anything: it is the top of the house.
"""

from .main import main

__all__ = ["main"]
