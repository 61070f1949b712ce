"""What model-written code sees at run time: guarded built-ins, read-only modules, budgets.

Violations and exhausted budgets are BaseExceptions, so `except Exception:` in model code cannot
swallow them (bare `except:` is rewritten to `except Exception:`). Each is also recorded, so code
that swallows one anyway (a `return` in `finally`, an `__exit__` returning True) still fails.
"""

from __future__ import annotations

import _string
import asyncio
import builtins
import importlib
import itertools
import string
import time
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..budget import Deadline
from .bridge import await_only, in_code_greenlet
from .guard import FORBIDDEN_BUILTINS, attribute_allowed

# The modules smolagents allows by default, less `queue` (a blocking get() would stall the loop).
# "name" authorizes that module; "name.*" also its submodules.
BASE_BUILTIN_MODULES = (
    "collections", "collections.abc", "datetime", "itertools", "json", "math", "random", "re", "stat", "statistics",
    "time", "unicodedata",
)  # fmt: skip

SAFE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "classmethod", "complex", "dict", "dir",
    "divmod", "enumerate", "filter", "float", "format", "frozenset", "hash", "hex", "id", "int", "isinstance",
    "issubclass", "len", "list", "map", "max", "min", "next", "object", "oct", "ord", "property",
    "repr", "reversed", "round", "set", "slice", "sorted", "staticmethod", "str", "sum", "super", "tuple", "zip",
    "__build_class__", "NotImplemented", "Ellipsis",
)  # fmt: skip
_EXCEPTIONS = tuple(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, Exception) and not name.startswith("_")
)
AGENT_MODULE = "__agent__"  # the __name__ model code runs under: its classes and functions carry it

YIELD_EVERY = 0.005  # seconds of CPU between two yields to the event loop
MAX_PRINT_CHARS = 50_000
MAX_INT_BITS = 1_000_000  # `**` and `<<` results
MAX_SEQUENCE = 10_000_000  # `*` repetition of strings, bytes, lists, tuples


class GuardViolation(BaseException):  # a signal, not an error model code may handle
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

    The clock stands still while a tool waits for a person (see `agent_runtime.budget`). Every so
    often it also yields to the event loop, so a CPU-bound action cannot freeze it.
    """

    def __init__(self, max_operations: int, timeout: float) -> None:
        self.max_operations = max_operations
        self.timeout = timeout
        self.clock = Deadline(timeout)
        self.operations = 0
        self.last_yield = 0.0
        self.exhausted: str | None = None

    def start(self) -> None:
        self.operations = 0
        self.exhausted = None
        self.last_yield = time.monotonic()
        self.clock.start()

    def out_of_time(self) -> str:
        waited = self.clock.paused_for
        excluded = f" (not counting {waited:.3g} s spent waiting for people)" if waited >= 0.001 else ""
        return f"the code ran longer than its {self.timeout:g} s budget{excluded}"

    def exceed(self, message: str) -> BudgetExceeded:
        self.exhausted = self.exhausted or message
        return BudgetExceeded(self.exhausted)

    def tick(self) -> bool:
        self.operations += 1
        if self.exhausted or self.operations > self.max_operations:
            raise self.exceed(f"the code ran more than {self.max_operations:,} operations; make it do less")
        if not self.operations & 0xFF:
            now = time.monotonic()
            if self.clock.expired():
                raise self.exceed(self.out_of_time())
            if now - self.last_yield > YIELD_EVERY and in_code_greenlet():
                await_only(asyncio.sleep(0))
                self.last_yield = time.monotonic()
        return True

    def ticking(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Iterate with a tick per item, so C code consuming it (sum, max) stays within budget."""
        for item in iterable:
            self.tick()
            yield item


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


class ModuleProxy:
    """A read-only view of a module: model code can use it but not change what the host uses."""

    __slots__ = ("_module",)

    def __init__(self, module: types.ModuleType) -> None:
        object.__setattr__(self, "_module", module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("modules cannot be changed")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("modules cannot be changed")

    def __dir__(self) -> list[str]:
        return [n for n in dir(self._module) if not n.startswith("_")]

    def __repr__(self) -> str:
        return f"<module {self._module.__name__!r}>"


class _SafeFormatter(string.Formatter):
    """str.format without `{0.__class__}`-style attribute walks."""

    def __init__(self, guards: Guards) -> None:
        self.guards = guards

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        _, rest = _string.formatter_field_name_split(field_name)
        for is_attribute, name in rest:
            if is_attribute and not attribute_allowed(name):
                raise self.guards.refuse(f"format field {field_name!r} is not allowed: it reaches a private attribute")
        return super().get_field(field_name, args, kwargs)


class _Attributes:
    """`obj.attr = v` and `del obj.attr` in model code are rewritten to go through this."""

    __slots__ = ("guards", "obj")

    def __init__(self, guards: Guards, obj: Any) -> None:
        self.guards, self.obj = guards, obj

    def __getitem__(self, name: str) -> Any:
        return self.guards.getattr(self.obj, name)

    def __setitem__(self, name: str, value: Any) -> None:
        self.guards.setattr(self.obj, name, value)

    def __delitem__(self, name: str) -> None:
        self.guards.delattr(self.obj, name)


class Guards:
    """The guarded operations the rewritten code calls, bound to one executor."""

    def __init__(self, authorized_imports: Iterable[str], budget: Budget) -> None:
        self.authorized = frozenset(authorized_imports)
        self.budget = budget
        self.range_limit = max(1_000_000, budget.max_operations)
        self.violation: str | None = None
        self._formatter = _SafeFormatter(self)

    def refuse(self, message: str) -> GuardViolation:
        self.violation = self.violation or message
        return GuardViolation(message)

    def module_allowed(self, name: str) -> bool:
        if name in self.authorized:
            return True
        parts = name.split(".")
        return any(".".join(parts[:i]) + ".*" in self.authorized for i in range(1, len(parts)))

    # -- attributes ------------------------------------------------------------------------------

    def getattr(self, obj: Any, name: str, *default: Any) -> Any:
        if not isinstance(name, str):
            raise TypeError("attribute name must be a string")
        if not attribute_allowed(name):
            raise self.refuse(f"access to the attribute {name!r} is not allowed")
        try:
            value = getattr(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise
        if name in ("format", "format_map"):
            return self._safe_format(value)
        if isinstance(obj, ModuleProxy):
            return self._module_member(object.__getattribute__(obj, "_module"), name, value)
        return value

    def _safe_format(self, value: Any) -> Any:
        template = getattr(value, "__self__", None)
        vformat = self._formatter.vformat
        if isinstance(template, str):  # "...".format, also on str subclasses and through super()
            if getattr(value, "__name__", "") == "format":
                return lambda *args, **kwargs: vformat(template, args, kwargs)
            return lambda mapping: vformat(template, (), mapping)
        if value is str.format:
            return lambda template, *args, **kwargs: vformat(template, args, kwargs)
        if value is str.format_map:
            return lambda template, mapping: vformat(template, (), mapping)
        return value

    def _module_member(self, module: types.ModuleType, name: str, value: Any) -> Any:
        if isinstance(value, types.ModuleType):
            if not self.module_allowed(value.__name__):
                raise self.refuse(f"{module.__name__}.{name} is the module {value.__name__}, which is not authorized")
            return ModuleProxy(value)
        if getattr(value, "__self__", None) is builtins and getattr(value, "__name__", "") in FORBIDDEN_BUILTINS:
            raise self.refuse(f"{module.__name__}.{name} is not allowed")
        if module.__name__ == "operator" and name in ("attrgetter", "methodcaller"):
            raise self.refuse(f"operator.{name} is not allowed")
        return value

    def hasattr(self, obj: Any, name: str) -> bool:
        try:
            self.getattr(obj, name)
        except AttributeError:
            return False
        return True

    def setattr(self, obj: Any, name: str, value: Any) -> None:
        self._check_writable(obj, name)
        setattr(obj, name, value)

    def delattr(self, obj: Any, name: str) -> None:
        self._check_writable(obj, name)
        delattr(obj, name)

    def _check_writable(self, obj: Any, name: str) -> None:
        if not isinstance(name, str) or name.startswith("_") or not attribute_allowed(name):
            raise self.refuse(f"setting the attribute {name!r} is not allowed")
        if isinstance(obj, ModuleProxy | types.ModuleType):
            raise self.refuse("modules cannot be changed")
        shared = isinstance(obj, type) or callable(obj)  # classes and functions may be the host's own
        if shared and getattr(obj, "__module__", None) != AGENT_MODULE:
            raise self.refuse(f"{obj!r:.60} is not defined by this code and cannot be changed")

    def attributes(self, obj: Any) -> _Attributes:
        return _Attributes(self, obj)

    # -- imports ---------------------------------------------------------------------------------

    def import_module(self, name: str, bind_submodule: bool) -> ModuleProxy:
        if not self.module_allowed(name):
            raise self.refuse(f"import of {name} is not allowed; authorized imports are {sorted(self.authorized)}")
        module = self._load(name)
        if bind_submodule or "." not in name:
            return ModuleProxy(module)
        return ModuleProxy(self._load(name.split(".", 1)[0]))

    def _load(self, name: str) -> types.ModuleType:
        if name == "time":
            return _time_module()
        if name == "itertools":
            return _itertools_module(self.budget)
        return importlib.import_module(name)

    def import_from(self, module_name: str, name: str) -> Any:
        module = self.import_module(module_name, True)
        try:
            return self.getattr(module, name)
        except AttributeError:
            return self.import_module(f"{module_name}.{name}", True)

    # -- built-ins that could run unbounded in C -------------------------------------------------

    def range(self, *args: int) -> range:
        result = range(*args)
        if len(result) > self.range_limit:
            raise self.budget.exceed(f"range of {len(result):,} items is over the limit of {self.range_limit:,}")
        return result

    def iter(self, obj: Any, *sentinel: Any) -> Iterator[Any]:
        return self.budget.ticking(iter(obj, *sentinel)) if sentinel else iter(obj)

    def pow(self, base: Any, exponent: Any, *modulo: Any) -> Any:
        huge = _is_int(base) and _is_int(exponent) and exponent * abs(base).bit_length() > MAX_INT_BITS
        if huge and not modulo and abs(base) > 1:
            raise self.budget.exceed(f"{base} ** {exponent} would have over {MAX_INT_BITS:,} bits")
        return pow(base, exponent, *modulo)

    def mul(self, left: Any, right: Any) -> Any:
        for sequence, count in ((left, right), (right, left)):
            if (
                isinstance(sequence, str | bytes | list | tuple)
                and _is_int(count)
                and len(sequence) * count > MAX_SEQUENCE
            ):
                raise self.budget.exceed(f"repeating a sequence {count:,} times is over the limit")
        return left * right

    def lshift(self, left: Any, right: Any) -> Any:
        if _is_int(left) and _is_int(right) and right > MAX_INT_BITS:
            raise self.budget.exceed(f"<< {right} would make a number of over {MAX_INT_BITS:,} bits")
        return left << right

    @staticmethod
    def type(obj: Any) -> type:
        return type(obj)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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


_ITERATORS = (
    "accumulate", "chain", "combinations", "combinations_with_replacement", "compress", "count", "cycle", "dropwhile",
    "filterfalse", "groupby", "islice", "pairwise", "permutations", "product", "repeat", "starmap", "takewhile",
    "zip_longest",
)  # fmt: skip


def _itertools_module(budget: Budget) -> types.ModuleType:
    """`itertools` whose iterators tick per item: `sum(itertools.count())` ends at the budget."""
    proxy = types.ModuleType("itertools")
    for name in dir(itertools):
        if not name.startswith("_"):
            setattr(proxy, name, getattr(itertools, name))

    def ticking(factory: Callable[..., Iterable[Any]]) -> Callable[..., Iterator[Any]]:
        return lambda *args, **kwargs: budget.ticking(factory(*args, **kwargs))

    for name in _ITERATORS:
        setattr(proxy, name, ticking(getattr(itertools, name)))
    vars(proxy)["chain"].from_iterable = ticking(itertools.chain.from_iterable)
    return proxy


def safe_builtins(guards: Guards, printer: PrintBuffer) -> dict[str, Any]:
    namespace = {name: getattr(builtins, name) for name in SAFE_BUILTINS + _EXCEPTIONS}
    namespace.update(
        getattr=guards.getattr,
        hasattr=guards.hasattr,
        setattr=guards.setattr,
        range=guards.range,
        iter=guards.iter,
        pow=guards.pow,
        type=guards.type,
        print=printer.print,
    )
    return namespace
