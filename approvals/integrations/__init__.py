"""Approvals for agents built on other frameworks: each module is an optional extra.

`pip install "approvals[smolagents]"` and so on; importing a module whose framework is missing says
which extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f'{module} is not installed: pip install "approvals[{extra}]" ({error})') from error
