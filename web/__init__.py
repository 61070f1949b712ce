"""The aiohttp application: reviewer pages, the JSON API with long-poll waits, live events, metrics."""

from .app import create_app
from .settings import WebSettings

__all__ = ["WebSettings", "create_app"]
