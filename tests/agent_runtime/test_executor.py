"""The CodeAgent executor: model-written code calling tools without await, its guard and its budgets."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path

import pytest

from agent_runtime import InterpreterError, tool
from agent_runtime.executor import LocalPythonExecutor, parse_code_blobs

CALLS: list[int] = []
JSON_DEFAULT = json.JSONEncoder.default


@tool
async def double(x: int) -> int:
    """Doubles a number after a short wait.

    Args:
        x: The number.
    """
    await asyncio.sleep(0.01)
    CALLS.append(x)
    return 2 * x


@tool
def add(a: int, b: int) -> int:
    """Adds two numbers (a sync tool).

    Args:
        a: First.
        b: Second.
    """
    return a + b


@pytest.fixture
def executor() -> LocalPythonExecutor:
    executor = LocalPythonExecutor()
    executor.send_tools({"double": double, "add": add})
    return executor


async def run(executor: LocalPythonExecutor, code: str) -> object:
    return (await executor.arun(code)).output


async def test_async_tool_without_await_and_variables_persist(executor: LocalPythonExecutor) -> None:
    first = await executor.arun("x = double(21)\nprint('x =', x)")
    assert (first.output, first.logs, first.is_final_answer) == (None, "x = 42\n", False)
    assert await run(executor, "add(x, 1)") == 43
    assert await run(executor, "await double(x)") == 84  # a model that writes await is fine too


async def test_final_answer_ends_the_action(executor: LocalPythonExecutor) -> None:
    from agent_runtime import FinalAnswerTool

    executor.send_tools({"final_answer": FinalAnswerTool()})
    result = await executor.arun("print('done')\nfinal_answer({'n': double(2)})\nprint('never')")
    assert (result.output, result.logs, result.is_final_answer) == ({"n": 4}, "done\n", True)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("[double(i) for i in range(3)]", [0, 2, 4]),
        ("{i: double(i) for i in range(2)}", {0: 0, 1: 2}),
        ("def f(n):\n    return 1 if n == 0 else n * f(n - 1)\nf(5)", 120),
        ("def outer(a):\n    def inner(b):\n        return double(a + b)\n    return inner(1)\nouter(2)", 6),
        (
            "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    r = f'caught {type(e).__name__}'\nr",
            "caught ZeroDivisionError",
        ),
        (
            "import math, re\nfrom collections import Counter\n[math.floor(2.5), re.sub('a', 'b', 'aa'), Counter('aab')['a']]",
            [2, "bb", 2],
        ),
        ("sorted([3, 1, 2], key=lambda v: -double(v))", [3, 2, 1]),
        ("list(map(double, [1, 2]))", [2, 4]),
        ("list(filter(lambda v: double(v) > 2, [1, 2, 3]))", [2, 3]),
        ("def gen(n):\n    for i in range(n):\n        yield double(i)\nlist(gen(3))", [0, 2, 4]),
        (
            "def deco(f):\n    def wrapped(v):\n        return double(f(v))\n    return wrapped\n@deco\ndef inc(v):\n    return v + 1\ninc(1)",
            4,
        ),
        (
            "class Box:\n    size = double(2)\n    def __init__(self, v):\n        self.v = double(v)\nb = Box(3)\n[Box.size, b.v]",
            [4, 6],
        ),
        (
            "class A:\n    def __init__(self):\n        self.x = 1\nclass B(A):\n    def __init__(self):\n        super().__init__()\nB().x",
            1,
        ),
        ("'{} and {k}'.format(1, k=double(1))", "1 and 2"),
        ("f'{double(2)!r:>4}'", "   4"),
    ],
)
async def test_python_that_works(executor: LocalPythonExecutor, code: str, expected: object) -> None:
    assert await run(executor, code) == expected


async def test_tool_calls_from_many_actions_run_concurrently_on_one_thread() -> None:
    executors = []
    for _ in range(200):
        executor = LocalPythonExecutor()
        executor.send_tools({"double": double})
        executors.append(executor)
    started = time.monotonic()
    results = await asyncio.gather(*(e.arun(f"double({i})") for i, e in enumerate(executors)))
    assert [r.output for r in results] == [2 * i for i in range(200)]
    assert time.monotonic() - started < 1.0  # 200 x 10 ms in parallel, not in sequence


HOSTILE = {
    "import os": "import os\nos.system('touch {marker}')",
    "import subprocess": "import subprocess\nsubprocess.run(['touch', '{marker}'])",
    "import sys": "import sys\nsys.modules",
    "import builtins": "import builtins\nbuiltins.open('{marker}', 'w')",
    "from import": "from os import system\nsystem('touch {marker}')",
    "dunder attribute": "().__class__.__bases__[0].__subclasses__()",
    "dunder via getattr": "getattr((), '__class__')",
    "dunder via setattr": "setattr(double, '__doc__', 'x')",
    "vars": "vars(double)",
    "str.format walk": "'{0.__class__}'.format(1)",
    "str.format on class": "str.format('{0.__class__}', 1)",
    "format_map walk": "'{x.__class__}'.format_map({'x': 1})",
    "frame of a generator": "def g():\n    yield 1\ng().gi_frame",
    "private module attribute": "import random\nrandom._os",
    "eval": "eval('1')",
    "exec": "exec('x = 1')",
    "compile": "compile('1', 'f', 'eval')",
    "open": "open('{marker}', 'w')",
    "__import__": "__import__('os')",
    "globals": "globals()",
    "locals": "locals()",
    "breakpoint": "breakpoint()",
    "input": "input()",
    "builtins name": "__builtins__",
    "relative import": "from . import x",
    "match class pattern": "match 1:\n    case object(__class__=c):\n        pass",
    "except as builtins": "try:\n    1 / 0\nexcept Exception as __builtins__:\n    pass",
    "class named like the runtime": "class __rt_tick__:\n    pass",
    "import as a runtime name": "import itertools as __rt_tick__",
    "match capture of a runtime name": "match 1:\n    case __rt_getattr__:\n        pass",
    "global dunder": "def f():\n    global __builtins__\nf()",
    "lambda argument": "(lambda __builtins__: 1)(2)",
    "private submodule": "import re._compiler as c",
    "unauthorized submodule": "import json.tool as t",
    "format on a str subclass": "class S(str):\n    pass\nS.format('{0.__class__}', 1)",
    "format through super": "class S(str):\n    def f(self):\n        return super().format\nS('{0.__class__}').f()(1)",
    "change a module": "import json\njson.dumps = lambda *a, **k: 'pwned'",
    "delete from a module": "import json\ndel json.dumps",
    "change a host class": "from json import JSONEncoder\nJSONEncoder.default = lambda self, o: 'pwned'",
    "setattr on a host class": "import collections\nsetattr(collections.Counter, 'most_common', None)",
    "star import": "from math import *",
}


@pytest.mark.parametrize("case", HOSTILE)
async def test_hostile_code_fails_and_does_nothing(executor: LocalPythonExecutor, tmp_path: Path, case: str) -> None:
    marker = tmp_path / "marker"
    with pytest.raises(InterpreterError) as caught:
        await executor.arun(HOSTILE[case].replace("{marker}", str(marker)))
    assert any(word in str(caught.value) for word in ("not allowed", "not available", "not authorized", "cannot be"))
    assert not marker.exists()
    assert json.dumps({"a": 1}) == '{"a": 1}'  # nothing in the host was changed
    assert json.JSONEncoder.default is JSON_DEFAULT


async def test_module_attributes_that_re_export_os_are_refused() -> None:
    executor = LocalPythonExecutor(additional_authorized_imports=["glob", "operator"])
    for code in ("import glob\nglob.os", "from glob import os", "import glob\nglob.sys",
                 "import operator\noperator.attrgetter('__class__')(1)", "import operator\noperator.methodcaller('x')"):  # fmt: skip
        with pytest.raises(InterpreterError, match=r"not authorized|not allowed"):
            await executor.arun(code)
    assert await run(executor, "import glob\ncallable(glob.glob)") is True


async def test_guard_violations_cannot_be_swallowed(executor: LocalPythonExecutor) -> None:
    for handler in ("except Exception:\n    pass", "except:\n    pass"):
        with pytest.raises(InterpreterError, match="not allowed"):
            await executor.arun(f"try:\n    getattr(1, '__class__')\n{handler}")


async def test_attributes_of_the_codes_own_objects_can_be_set(executor: LocalPythonExecutor) -> None:
    code = (
        "class P:\n    pass\np = P()\np.x = 1\np.x += double(1)\nP.kind = 'point'\ndel p.x\n[hasattr(p, 'x'), P.kind]"
    )
    assert await run(executor, code) == [False, "point"]


@pytest.mark.parametrize(
    "code",
    [
        "import itertools\nsum(itertools.count())",
        "import itertools\nmax(itertools.repeat(1, 10**8))",
        "import itertools\nlen(list(itertools.product(range(1000), repeat=4)))",
        "sum(iter(int, 1))",
        "10 ** 10 ** 8",
        "x = 10\nx **= 10 ** 8",
        "pow(10, 10 ** 8)",
        "'a' * 10 ** 9",
        "[0] * 10 ** 9",
        "1 << 10 ** 9",
    ],
)
async def test_work_done_in_c_is_bounded_too(code: str) -> None:
    executor = LocalPythonExecutor(max_operations=100_000, timeout_seconds=2)
    started = time.monotonic()
    with pytest.raises(InterpreterError, match=r"operations|limit|bits|budget"):
        await executor.arun(code)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    "code",
    [
        "class Quiet:\n    def __enter__(self):\n        return self\n    def __exit__(self, *exc):\n        return True\n"
        "with Quiet():\n    getattr(1, '__class__')\n'escaped'",
        "def f():\n    try:\n        while True:\n            pass\n    finally:\n        return 'escaped'\nf()",
    ],
)
async def test_swallowed_violations_and_budgets_still_fail_the_action(code: str) -> None:
    with pytest.raises(InterpreterError, match=r"not allowed|operations"):
        await LocalPythonExecutor(max_operations=10_000).arun(code)


async def test_a_swallowed_timeout_still_ends_the_action() -> None:
    executor = LocalPythonExecutor(timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(InterpreterError, match="budget"):
        await executor.arun(
            "import time\ndef f():\n    try:\n        time.sleep(5)\n    finally:\n        return 1\nf()"
        )
    assert time.monotonic() - started < 1.5


async def test_operation_budget_stops_an_endless_loop_even_inside_try() -> None:
    executor = LocalPythonExecutor(max_operations=10_000)
    with pytest.raises(InterpreterError, match="more than 10,000 operations"):
        await executor.arun("try:\n    while True:\n        pass\nexcept Exception:\n    pass")


async def test_time_budget_stops_cpu_bound_code_while_the_loop_keeps_running() -> None:
    executor = LocalPythonExecutor(max_operations=10**12, timeout_seconds=0.5)
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    with pytest.raises(InterpreterError, match=r"0\.5 s budget"):
        await executor.arun("n = 0\nwhile True:\n    n += 1")
    ticking.cancel()
    assert time.monotonic() - started < 2
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.1  # the loop was never frozen


async def test_time_budget_covers_awaited_tools_too() -> None:
    executor = LocalPythonExecutor(timeout_seconds=0.2)
    executor.send_tools({"double": double})
    started = time.monotonic()
    with pytest.raises(InterpreterError, match="budget"):
        await executor.arun("import time\ntime.sleep(5)")
    assert time.monotonic() - started < 1


async def test_time_sleep_waits_without_blocking_the_loop() -> None:
    executors = [LocalPythonExecutor() for _ in range(20)]
    started = time.monotonic()
    await asyncio.gather(*(e.arun("import time\ntime.sleep(0.2)") for e in executors))
    assert time.monotonic() - started < 0.6


async def test_print_output_is_bounded() -> None:
    executor = LocalPythonExecutor(max_print_outputs_length=100)
    result = await executor.arun("for i in range(1000):\n    print('line', i)")
    assert len(result.logs) < 200
    assert "truncated" in result.logs


async def test_errors_carry_the_line_and_the_logs_so_far(executor: LocalPythonExecutor) -> None:
    with pytest.raises(InterpreterError) as caught:
        await executor.arun("print('before')\nx = 1\n{}['missing']")
    message = str(caught.value)
    assert "line 3" in message
    assert "KeyError" in message
    assert "before" in message


async def test_tool_argument_errors_reach_the_code(executor: LocalPythonExecutor) -> None:
    with pytest.raises(InterpreterError, match="must be of type integer"):
        await executor.arun("double('x')")
    assert await run(executor, "try:\n    double('x')\nexcept ValueError as e:\n    r = 'handled'\nr") == "handled"


def test_sync_face_runs_code(executor: LocalPythonExecutor) -> None:
    assert executor("double(4)").output == 8


async def test_sync_face_works_inside_a_running_loop() -> None:
    executor = LocalPythonExecutor()
    assert executor("sum([1, 2, 3])").output == 6


def test_syntax_errors_are_clear() -> None:
    with pytest.raises(InterpreterError, match="Syntax error at line 2"):
        LocalPythonExecutor()("x = 1\nif x\n")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Thought: go\n```python\nx = 1\n```\ntrailing", "x = 1"),
        ("```py\ny = 2\n```", "y = 2"),
        ("<code>z = 3</code>", "z = 3"),
        ("```python\na = 1\n```\nthen\n```python\nb = 2\n```", "a = 1\n\nb = 2"),
        ("final_answer(42)", "final_answer(42)"),
    ],
)
def test_code_is_taken_from_fences_and_tags(text: str, code: str) -> None:
    assert parse_code_blobs(text) == code


def test_text_without_code_is_a_parsing_error() -> None:
    from agent_runtime import AgentParsingError

    with pytest.raises(AgentParsingError, match="No code block"):
        parse_code_blobs("I think the answer is probably 42, let me see.")
