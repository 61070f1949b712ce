"""Provider SDKs load off the loop, once, and the first load tunes the garbage collector for many agents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

PROBE = textwrap.dedent(
    """
    import asyncio, gc, json, sys
    from agent_runtime.models.sdk import load_sdk

    name = sys.argv[1]
    before = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(), "switch": sys.getswitchinterval()}

    async def main():
        module = await load_sdk(name)
        again = await load_sdk(name)
        return module is again and module is sys.modules[name]

    same = asyncio.run(main())
    after = {
        "threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(), "enabled": gc.isenabled(),
        "switch": sys.getswitchinterval(),
    }
    print(json.dumps({"before": before, "after": after, "same": same}))
    """
)


def probe(module: str = "email.mime.text", **env: str) -> dict[str, Any]:
    """Load `module` (by default any module not imported yet) as an SDK, in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env},  # litellm offline, as the runtime sets it
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_first_sdk_load_freezes_start_up_and_makes_full_collections_rarer() -> None:
    seen = probe()
    assert seen["same"] is True
    assert seen["before"]["frozen"] == 0
    assert isinstance(seen["after"]["frozen"], int) and seen["after"]["frozen"] > 1000  # the process's start-up
    assert seen["after"]["enabled"] is True  # paused only during the import
    young, middle, old = seen["after"]["threshold"]
    assert [young, middle] == seen["before"]["threshold"][:2]
    assert old == (100 if sys.version_info < (3, 14) else seen["before"]["threshold"][2])
    assert seen["after"]["switch"] == seen["before"]["switch"]  # only litellm's thread pool needs a shorter one


def test_loading_litellm_shortens_the_gil_switch_interval() -> None:
    seen = probe("litellm")
    assert seen["before"]["switch"] == 0.005
    assert seen["after"]["switch"] == 0.0005


def test_the_collector_can_be_left_as_python_set_it() -> None:
    seen = probe("litellm", AGENT_RUNTIME_TUNING="0")
    assert seen["same"] is True
    assert seen["after"]["frozen"] == 0
    assert seen["after"]["threshold"] == seen["before"]["threshold"]
    assert seen["after"]["switch"] == seen["before"]["switch"]
