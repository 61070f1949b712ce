"""`LocalPythonExecutor`: runs a CodeAgent's code actions on the event loop, guarded and budgeted."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..budget import counting
from ..concurrency import run_coroutine_sync
from ..errors import InterpreterError
from ..tools import Tool
from . import guard
from .bridge import await_only, greenlet_spawn
from .runtime import (
    AGENT_MODULE,
    BASE_BUILTIN_MODULES,
    Budget,
    BudgetExceeded,
    FinalAnswerSignal,
    Guards,
    GuardViolation,
    PrintBuffer,
    safe_builtins,
)

DEFAULT_MAX_OPERATIONS = 10_000_000
DEFAULT_TIMEOUT = 60.0
NO_LIMIT = 10.0**9  # seconds: "no time limit" (smolagents' timeout_seconds=None)


@dataclass(slots=True)
class CodeOutput:
    output: Any
    logs: str
    is_final_answer: bool


class LocalPythonExecutor:
    """Runs model-written Python in-process. Variables persist from one `arun` to the next.

    Tools (sync or async) are called without `await`; async ones are awaited on the loop through a
    greenlet, sync ones run in the runtime's worker threads. This is a guard against mistakes and
    casual misuse, not a sandbox against a determined attacker: run untrusted agents in a container.
    """

    def __init__(
        self,
        additional_authorized_imports: Iterable[str] = (),
        max_operations: int = DEFAULT_MAX_OPERATIONS,
        timeout_seconds: float = DEFAULT_TIMEOUT,
        max_print_outputs_length: int = 50_000,
    ) -> None:
        self.authorized_imports = sorted({*BASE_BUILTIN_MODULES, *additional_authorized_imports})
        self.budget = Budget(max_operations, timeout_seconds)
        self.printer = PrintBuffer(max_print_outputs_length)
        self.guards = Guards(self.authorized_imports, self.budget)
        builtins_namespace = safe_builtins(self.guards, self.printer)
        self._runtime = {
            "__builtins__": builtins_namespace,
            "__name__": AGENT_MODULE,
            guard.TICK: self.budget.tick,
            guard.GETATTR: self.guards.getattr,
            guard.ATTRIBUTES: self.guards.attributes,
            guard.IMPORT: self.guards.import_module,
            guard.IMPORT_FROM: self.guards.import_from,
            guard.POW: self.guards.pow,
            guard.MUL: self.guards.mul,
            guard.LSHIFT: self.guards.lshift,
        }
        self.state: dict[str, Any] = dict(self._runtime)
        self.state.update(self._runtime)

    def send_variables(self, variables: Mapping[str, Any]) -> None:
        self.state.update(variables)

    def send_tools(self, tools: Mapping[str, Tool]) -> None:
        for name, tool in tools.items():
            self.state[name] = _final_answer(tool) if name == "final_answer" else _plain_call(tool)

    def __call__(self, code_action: str) -> CodeOutput:
        return run_coroutine_sync(lambda: self.arun(code_action))

    async def arun(self, code_action: str) -> CodeOutput:
        """Run one code action; raises `InterpreterError` (with the logs so far) if it fails."""
        compiled = compile(guard.prepare(code_action), "<code>", "exec")
        self.state.update(self._runtime)  # the code cannot name these, but keep them intact anyway
        self.state.pop(guard.OUTPUT, None)
        self.budget.start()
        self.guards.violation = None
        # Covers awaited tools; ticks cover CPU-bound code. Waits for people are not counted.
        deadline = asyncio.timeout(self.budget.timeout)
        try:
            with counting(self.budget.clock):
                async with deadline:
                    self.budget.clock.bind(deadline)
                    await greenlet_spawn(exec, compiled, self.state)
        except TimeoutError as error:
            if not deadline.expired():
                raise self._error(f"TimeoutError: {error}", error) from None
            raise self._error(self.budget.out_of_time(), error) from None
        except FinalAnswerSignal as signal:
            return CodeOutput(signal.value, self.printer.take(), True)
        except (GuardViolation, BudgetExceeded) as error:
            raise self._error(f"{error}", error) from None
        except InterpreterError as error:
            raise self._error(str(error), error) from None
        except Exception as error:
            raise self._error(f"{type(error).__name__}: {error}", error) from None
        finally:
            self.budget.clock.bind(None)
        if swallowed := self.guards.violation or self.budget.exhausted:  # caught by the code, still a failure
            raise self._error(swallowed, None)
        return CodeOutput(self.state.pop(guard.OUTPUT, None), self.printer.take(), False)

    def _error(self, message: str, error: BaseException | None) -> InterpreterError:
        line = _line_of(error) if error is not None else None
        logs = self.printer.take()
        where = f"Code execution failed at line {line}" if line else "Code execution failed"
        text = f"{where}: {message}"
        if logs:
            text = f"Execution logs:\n{logs}\n{text}"
        return InterpreterError(text, logs)


def _line_of(error: BaseException) -> int | None:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == "<code>"]
    return frames[-1].lineno if frames else None


def _plain_call(tool: Tool) -> Any:
    """The tool as model code sees it: a plain function, whatever `forward` is."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return await_only(tool.acall(*args, **kwargs))

    call.__name__ = tool.name
    call.__doc__ = tool.description
    return call


def _final_answer(tool: Tool) -> Any:
    def final_answer(*args: Any, **kwargs: Any) -> Any:
        raise FinalAnswerSignal(await_only(tool.acall(*args, **kwargs)))

    return final_answer


def evaluate_python_code(
    code: str,
    static_tools: Mapping[str, Any] | None = None,
    custom_tools: Mapping[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    authorized_imports: Iterable[str] = (),
    max_print_outputs_length: int = 50_000,
    timeout_seconds: float | None = DEFAULT_TIMEOUT,
) -> tuple[Any, bool]:
    """Run `code` once, as smolagents' function of that name does: (its output, was it a final answer).

    Tools may be `Tool`s or plain functions; `state` holds the variables, read before and updated after.
    """
    executor = LocalPythonExecutor(
        authorized_imports, timeout_seconds=NO_LIMIT if timeout_seconds is None else timeout_seconds,
        max_print_outputs_length=max_print_outputs_length,
    )  # fmt: skip
    for tools in (static_tools or {}, custom_tools or {}):
        executor.send_tools({name: t for name, t in tools.items() if isinstance(t, Tool)})
        executor.send_variables({name: t for name, t in tools.items() if not isinstance(t, Tool)})
    if state is not None:
        executor.send_variables(state)
    result = executor(code)
    if state is not None:
        state.update({k: v for k, v in executor.state.items() if k not in executor._runtime})
    return result.output, result.is_final_answer
