"""The OpenAPI document is valid OpenAPI 3.1, and the server keeps to it under schemathesis's fuzzing.

schemathesis runs against `approvals serve` in its own process on a real Redis, as an admin and as a
viewer, over every operation but /run-agent and a run's event stream (both last as long as the run, by
design; tests/web/test_runs*.py cover them): no 5xx, no status
code, content type or response body that the document does not describe. Bounded (a fixed seed, a
few examples per operation) to stay within about two minutes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from openapi_spec_validator import validate

from approvals import ApprovalClient, Settings
from tests.redis_server import free_port
from web.access.users import Role, UserStore
from web.api.openapi import document

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "st"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(document(60.0))


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """`approvals serve` on the test's Redis and prefix, and a token per role."""
    async with ApprovalClient(settings, heartbeat=None) as client:
        users = UserStore(client.store)
        tokens = {}
        for name, role in (("root", Role.ADMIN), ("vic", Role.VIEWER)):
            await users.add(name, "long enough pw", role)
            tokens[name] = await users.create_token(name)
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "APPROVALS_PREFIX": settings.prefix,
        "APPROVALS_MAX_WAIT": "1",  # long polls of at most a second: fuzzing them stays quick
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "web.cli", "serve", "--port", str(port), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"{base}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        yield base, tokens
    finally:
        server.terminate()
        await server.wait()


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("who", "examples"), [("root", 8), ("vic", 4)])
async def test_schemathesis_finds_no_server_error_and_no_response_off_the_document(
    served: tuple[str, dict[str, str]], who: str, examples: int
) -> None:
    base, tokens = served
    fuzz = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "run", f"{base}/api/v1/openapi.json",
        "--header", f"Authorization: Bearer {tokens[who]}",
        "--checks", CHECKS, "--max-examples", str(examples), "--seed", "20261202",
        "--exclude-path", "/run-agent", "--exclude-path", "/api/v1/runs/{id}/events",
        "--request-timeout", "20", "--no-color",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await fuzz.communicate()
    report = output.decode()
    assert fuzz.returncode == 0, report[-6000:]
    assert " passed" in report and "Server error" not in report
