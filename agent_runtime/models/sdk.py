"""Provider SDKs, imported off the event loop on first use, and the interpreter tuned for many agents.

Importing openai takes some 0.4-0.8 s of CPU and makes 130,000 objects; litellm more. Imported
on the loop by the first model call, that stalled every other agent for as long (the cold start).
`load_sdk` imports in a worker thread instead, once per process, with the cyclic garbage collector
paused meanwhile: a full collection in the middle of an import holds the GIL for 100 ms and more.

A full collection walks every container object alive, and nothing else runs meanwhile: with 1,000
agents in flight (some 150 objects each, most of them the HTTP client's frames) one took 70-190 ms,
the worst stall of the event loop. So the first SDK load also tunes the collector, once per process:

- `gc.freeze()`: what lives then (the SDK's modules, classes and constants) lives as long as the
  process, and full collections stop walking it. Frozen objects are still freed when nothing refers
  to them; only a reference cycle among them, made before the freeze, outlives its last use.
- Before Python 3.14 (whose collector is incremental), full collections are made ten times rarer:
  the third threshold goes from 10 to 100 younger collections. A run leaves some 36 objects of
  cyclic garbage (HTTP response objects), which now wait longer for a full collection; the young
  collections, which find most of it, are unchanged. Measured by bench/vs_smolagents.py: the worst
  loop lag with 1,000 CodeAgents went from 120-200 ms to 40-60 ms, memory per run unchanged.

litellm prepares each call in the event loop's default thread pool. With hundreds of calls at
once those threads always want the GIL, and the loop's thread, which lets go of it at every socket
call, waits a whole switch interval (5 ms) to get it back each time: the convoy effect, a loop lag
of 1-2 s with 1,000 agents. Loading litellm therefore shortens the switch interval to 0.5 ms (lag
about 60 ms, CPU per run unchanged within noise).

Set AGENT_RUNTIME_TUNING=0 to leave the collector and the switch interval as Python set them.
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

FULL_COLLECTION_EVERY = 100  # younger (generation 1) collections between full ones; Python's default is 10
SWITCH_INTERVAL = 0.0005  # seconds a thread holds the GIL before another may take it, once litellm is loaded


def tuning_enabled() -> bool:
    return os.environ.get("AGENT_RUNTIME_TUNING", "1") != "0"


def tune_gc() -> None:
    """Freeze what is alive; before Python 3.14, make full collections rarer (see the module's docstring)."""
    gc.freeze()
    if sys.version_info < (3, 14):
        young, middle, old = gc.get_threshold()
        gc.set_threshold(young, middle, max(old, FULL_COLLECTION_EVERY))


def import_now(name: str) -> ModuleType:
    """Import `name` (in whatever thread calls this) with the GC paused; tune the interpreter (see above)."""
    with _import_lock:  # one at a time: the GC pause below is process-wide
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            module = importlib.import_module(name)  # waits if another thread is importing it
        finally:
            if tuning_enabled():
                if not _loaded:
                    tune_gc()  # the first SDK loaded ends start-up: what lives now lives as long as the process
                if name == "litellm":
                    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
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
