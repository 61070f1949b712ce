"""Notifications: request events sent to where reviewers are, with reminders and escalation.

`Notifier` reads the audit stream in a consumer group and delivers at least once, with retries, by
email (with one-click decision links: `links`), to Slack (with buttons: `slack`) and to signed
webhooks; `NotifyConfig` says where (environment variables, and a TOML file of per-queue rules).
"""

from .config import NotifyConfig, load_rules
from .notifier import Notifier, sign
from .status import NotifyStatus, notify_status

__all__ = ["Notifier", "NotifyConfig", "NotifyStatus", "load_rules", "notify_status", "sign"]
