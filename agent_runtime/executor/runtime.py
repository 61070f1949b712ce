"""What model-written code sees at run time: guarded built-ins, guarded imports, budgets.

Violations and exhausted budgets are BaseExceptions, so `except Exception:` in model code cannot
swallow them (bare `except:` is rewritten to `except Exception:`).
"""

from __future__ import annotations

import _string
import asyncio
import builtins
import importlib
import string
import time
import types
from collections.abc import Callable, Iterable
from typing import Any

from .bridge import await_only, in_code_greenlet
from .guard import FORBIDDEN_BUILTINS, attribute_allowed

# The modules smolagents allows by default, less `queue` (a blocking get() would stall the loop).
BASE_BUILTIN_MODULES = (
    "collections", "datetime", "itertools", "json", "math", "random", "re", "stat", "statistics", "time", "unicodedata",
)  # fmt: skip

SAFE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "classmethod", "complex", "dict", "dir",
    "divmod", "enumerate", "filter", "float", "format", "frozenset", "hash", "hex", "id", "int", "isinstance",
    "issubclass", "iter", "len", "list", "map", "max", "min", "next", "object", "oct", "ord", "pow", "property",
    "repr", "reversed", "round", "set", "slice", "sorted", "staticmethod", "str", "sum", "super", "tuple", "zip",
    "__build_class__", "NotImplemented", "Ellipsis",
)  # fmt: skip
_EXCEPTIONS = tuple(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, Exception) and not name.startswith("_")
)

YIELD_EVERY = 0.005  # seconds of CPU between two yields to the event loop
MAX_PRINT_CHARS = 50_000


class GuardViolation(BaseException):
    """Model code tried something the guard forbids."""


class BudgetExceeded(BaseException):
    """Model code used up its operation or time budget."""


class FinalAnswerSignal(BaseException):
    """`final_answer(x)` was called: the action ends with `x` as the answer."""

    def __init__(self, value: Any) -> None:
        super().__init__("final answer")
        self.value = value


class Budget:
    """Counts operations (loop iterations, calls, comprehension items) and watches the clock.

    Every so often it also yields to the event loop, so a CPU-bound action cannot freeze it.
    """

    def __init__(self, max_operations: int, timeout: float) -> None:
        self.max_operations = max_operations
        self.timeout = timeout
        self.operations = 0
        self.deadline = self.last_yield = 0.0

    def start(self) -> None:
        self.operations = 0
        self.last_yield = time.monotonic()
        self.deadline = self.last_yield + self.timeout

    def tick(self) -> bool:
        self.operations += 1
        if self.operations > self.max_operations:
            raise BudgetExceeded(f"the code ran more than {self.max_operations:,} operations; make it do less")
        if not self.operations & 0xFF:
            now = time.monotonic()
            if now > self.deadline:
                raise BudgetExceeded(f"the code ran longer than its {self.timeout:g} s budget")
            if now - self.last_yield > YIELD_EVERY and in_code_greenlet():
                await_only(asyncio.sleep(0))
                self.last_yield = time.monotonic()
        return True


class PrintBuffer:
    def __init__(self, limit: int = MAX_PRINT_CHARS) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def print(self, *values: Any, sep: str | None = " ", end: str | None = "\n", **_: Any) -> None:
        text = (" " if sep is None else sep).join(str(v) for v in values) + ("\n" if end is None else end)
        room = self.limit - self.size
        if room <= 0:
            self.truncated = True
            return
        self.parts.append(text[:room])
        self.size += min(len(text), room)
        self.truncated = self.truncated or len(text) > room

    def take(self) -> str:
        text = "".join(self.parts)
        if self.truncated:
            text += f"\n[output truncated to {self.limit:,} characters]"
        self.parts, self.size, self.truncated = [], 0, False
        return text


def _violation(message: str) -> GuardViolation:
    return GuardViolation(message)


class _SafeFormatter(string.Formatter):
    """str.format without `{0.__class__}`-style attribute walks."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        _, rest = _string.formatter_field_name_split(field_name)
        for is_attribute, name in rest:
            if is_attribute and not attribute_allowed(name):
                raise _violation(f"format field {field_name!r} is not allowed: it reaches a private attribute")
        return super().get_field(field_name, args, kwargs)


_FORMATTER = _SafeFormatter()


def _format_method(template: str) -> Callable[..., str]:
    return lambda *args, **kwargs: _FORMATTER.vformat(template, args, kwargs)


def _format_function(template: str, *args: Any, **kwargs: Any) -> str:
    return _FORMATTER.vformat(template, args, kwargs)


class Guards:
    """The guarded operations the rewritten code calls, bound to one executor's authorized imports."""

    def __init__(self, authorized_imports: Iterable[str], range_limit: int) -> None:
        self.authorized = frozenset(authorized_imports)
        self.range_limit = range_limit

    def module_allowed(self, name: str) -> bool:
        parts = name.split(".")
        return any(".".join(parts[: i + 1]) in self.authorized for i in range(len(parts)))

    def getattr(self, obj: Any, name: str, *default: Any) -> Any:
        if not isinstance(name, str):
            raise TypeError("attribute name must be a string")
        if not attribute_allowed(name):
            raise _violation(f"access to the attribute {name!r} is not allowed")
        if name in ("format", "format_map") and obj is str:
            return _format_function if name == "format" else lambda t, m: _FORMATTER.vformat(t, (), m)
        if name in ("format", "format_map") and isinstance(obj, str):
            template = obj
            return _format_method(template) if name == "format" else lambda m: _FORMATTER.vformat(template, (), m)
        try:
            value = getattr(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise
        if isinstance(obj, types.ModuleType):
            self._check_module_member(obj, name, value)
        return value

    def _check_module_member(self, module: types.ModuleType, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and not self.module_allowed(value.__name__):
            raise _violation(f"{module.__name__}.{name} is the module {value.__name__}, which is not authorized")
        if getattr(value, "__self__", None) is builtins and getattr(value, "__name__", "") in FORBIDDEN_BUILTINS:
            raise _violation(f"{module.__name__}.{name} is not allowed")
        if module.__name__ == "operator" and name in ("attrgetter", "methodcaller"):
            raise _violation(f"operator.{name} is not allowed")

    def hasattr(self, obj: Any, name: str) -> bool:
        try:
            self.getattr(obj, name)
        except AttributeError:
            return False
        return True

    def setattr(self, obj: Any, name: str, value: Any) -> None:
        if not isinstance(name, str) or name.startswith("_") or not attribute_allowed(name):
            raise _violation(f"setting the attribute {name!r} is not allowed")
        if isinstance(obj, types.ModuleType):
            raise _violation("modules cannot be changed")
        setattr(obj, name, value)

    def import_module(self, name: str, bind_submodule: bool) -> types.ModuleType:
        if not self.module_allowed(name):
            raise _violation(f"import of {name} is not allowed; authorized imports are {sorted(self.authorized)}")
        module = _PROXIES[name]() if name in _PROXIES else importlib.import_module(name)
        if bind_submodule or "." not in name:
            return module
        return importlib.import_module(name.split(".", maxsplit=1)[0])

    def import_from(self, module_name: str, name: str) -> Any:
        module = self.import_module(module_name, True)
        try:
            return self.getattr(module, name)
        except AttributeError:
            submodule = f"{module_name}.{name}"
            return self.import_module(submodule, True)

    def range(self, *args: int) -> range:
        result = range(*args)
        if len(result) > self.range_limit:
            raise BudgetExceeded(f"range of {len(result):,} items is over the limit of {self.range_limit:,}")
        return result

    @staticmethod
    def type(obj: Any) -> type:
        return type(obj)


def _time_module() -> types.ModuleType:
    """`time` whose sleep() waits on the event loop instead of blocking it."""
    proxy = types.ModuleType("time")
    for name in dir(time):
        if not name.startswith("_"):
            setattr(proxy, name, getattr(time, name))

    def sleep(seconds: float) -> None:
        if in_code_greenlet():
            await_only(asyncio.sleep(seconds))
        else:
            time.sleep(seconds)

    vars(proxy)["sleep"] = sleep
    return proxy


_PROXIES: dict[str, Callable[[], types.ModuleType]] = {"time": _time_module}


def safe_builtins(guards: Guards, printer: PrintBuffer) -> dict[str, Any]:
    namespace = {name: getattr(builtins, name) for name in SAFE_BUILTINS + _EXCEPTIONS}
    namespace.update(
        getattr=guards.getattr,
        hasattr=guards.hasattr,
        setattr=guards.setattr,
        range=guards.range,
        type=guards.type,
        print=printer.print,
    )
    return namespace
