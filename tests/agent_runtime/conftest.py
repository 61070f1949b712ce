"""The scripted OpenAI-compatible server the HTTP model tests talk to, and the model under test.

A test module using `model` defines `KINDS` (its `kind` parameters) and `make_model(kind, server)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from agent_runtime.models import Model
from tests.agent_runtime.openai_server import OpenAIServer


@pytest.fixture(scope="module")
def openai_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(openai_server: OpenAIServer) -> Iterator[OpenAIServer]:
    """The module's server with an empty script; every scripted reply must have been used by the end."""
    openai_server.reset()
    yield openai_server
    assert openai_server.pending == 0, "the test left scripted replies unused"
    openai_server.reset()


@pytest.fixture
def kind(request: pytest.FixtureRequest) -> str:
    """One of the module's KINDS (parametrized in pytest_generate_tests)."""
    return str(request.param)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kind" in metafunc.fixturenames and hasattr(metafunc.module, "KINDS"):
        metafunc.parametrize("kind", metafunc.module.KINDS, indirect=True)


@pytest.fixture
async def model(request: pytest.FixtureRequest, kind: str, server: OpenAIServer) -> AsyncIterator[Model]:
    """The module's model of this kind, pointed at the server; closed after the test."""
    model: Model = request.module.make_model(kind, server)
    yield model
    await model.aclose()
