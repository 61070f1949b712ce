"""Provider SDKs, imported off the event loop on first use, and their objects kept out of the GC's way.

Importing openai takes some 0.4-0.8 s of CPU and makes 130,000 objects; litellm more. Imported
on the loop by the first model call, that stalled every other agent for as long (the cold start).
`load_sdk` imports in a worker thread instead, once per process, with the cyclic garbage collector
paused meanwhile: a full collection in the middle of an import holds the GIL for 100 ms and more.

Then it freezes what is alive (`gc.freeze()`): the SDK's modules, classes and constants live as
long as the process, and a full collection that walked them took 90-190 ms with 1,000 agents in
flight; frozen, it walks only the agents' own objects (measured by bench/vs_smolagents.py). Frozen
objects are still freed when nothing refers to them; only a reference cycle among them, made before
the freeze, outlives its last use. Set AGENT_RUNTIME_GC_FREEZE=0 to keep the GC as it was.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
import sys
import threading
import weakref
from types import ModuleType

_import_lock = threading.Lock()
_loaded: set[str] = set()
_loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def freeze_enabled() -> bool:
    return os.environ.get("AGENT_RUNTIME_GC_FREEZE", "1") != "0"


def import_now(name: str) -> ModuleType:
    """Import `name` (in whatever thread calls this) with the GC paused; the first time, freeze what is alive."""
    with _import_lock:  # one at a time: the GC pause below is process-wide
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            module = importlib.import_module(name)  # waits if another thread is importing it
        finally:
            if not _loaded and freeze_enabled():
                gc.freeze()  # the first SDK loaded ends start-up: what lives now lives as long as the process
            if was_enabled:
                gc.enable()
        _loaded.add(name)
    return module


async def load_sdk(name: str) -> ModuleType:
    """`name` imported, in a worker thread the first time so the event loop keeps turning meanwhile."""
    if name in _loaded:
        return sys.modules[name]
    loop = asyncio.get_running_loop()
    lock = _loop_locks.setdefault(loop, asyncio.Lock())
    async with lock:  # a thousand agents starting together wait for one import, not a thread each
        if name in _loaded:
            return sys.modules[name]
        return await asyncio.to_thread(import_now, name)
