"""`LogLevel`, as smolagents names its verbosity levels (`verbosity_level=LogLevel.DEBUG`; default OFF).

The runtime logs through `logging` (logger "agent_runtime.agents"): OFF logs nothing, ERROR step
errors, INFO one line per step, DEBUG the model's output too. Nothing shows unless logging is configured.
"""

from __future__ import annotations

import logging
from enum import IntEnum


class LogLevel(IntEnum):
    OFF = -1
    ERROR = 0
    INFO = 1
    DEBUG = 2

    @property
    def logging_level(self) -> int:
        """The `logging` level of messages shown at this verbosity."""
        return {LogLevel.OFF: logging.CRITICAL + 1, LogLevel.ERROR: logging.ERROR, LogLevel.INFO: logging.INFO}.get(
            self, logging.DEBUG
        )
