"""Tools: `Tool` subclasses with a sync or async `forward`, and the `@tool` decorator for functions.

Arguments are checked against `inputs` before `forward` runs. Under `acall` an async `forward` is
awaited and a sync one runs in the runtime's worker threads.
"""

from __future__ import annotations

import copy
import inspect
import re
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .concurrency import ThreadLimiter, default_thread_limiter
from .errors import AgentToolCallError, ToolDefinitionError

JSON_TYPES = {"string", "boolean", "integer", "number", "image", "audio", "array", "object", "any", "null"}
_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "array": lambda v: isinstance(v, list | tuple),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Tool:
    """A capability the agent can call. Subclass it and set the class attributes below."""

    name: ClassVar[str]
    description: ClassVar[str]
    inputs: ClassVar[dict[str, dict[str, Any]]]
    output_type: ClassVar[str]
    thread_limiter: ThreadLimiter | None = None  # None: the runtime's default pool for sync tools

    def __init__(self) -> None:
        self._check_definition()

    # -- definition ------------------------------------------------------------------------------

    def _check_definition(self) -> None:
        cls = type(self).__name__
        for attribute in ("name", "description", "inputs", "output_type"):
            if not hasattr(self, attribute):
                raise ToolDefinitionError(f"{cls} must define the class attribute {attribute!r}")
        if not isinstance(self.name, str) or not _IDENTIFIER.fullmatch(self.name):
            raise ToolDefinitionError(f"{cls}.name must be a valid Python identifier, not {self.name!r}")
        if self.output_type not in JSON_TYPES:
            raise ToolDefinitionError(f"{cls}.output_type must be one of {sorted(JSON_TYPES)}")
        for input_name, spec in self.inputs.items():
            types_ = spec.get("type") if isinstance(spec, Mapping) else None
            for type_ in types_ if isinstance(types_, list) else [types_]:
                if type_ not in JSON_TYPES:
                    raise ToolDefinitionError(f"{cls}.inputs[{input_name!r}] needs a 'type' from {sorted(JSON_TYPES)}")
        parameters = self._forward_parameters()
        if parameters is not None:
            missing = [n for n in self.inputs if n not in parameters]
            if missing:
                raise ToolDefinitionError(f"{cls}.forward must accept the inputs {missing}")

    def _forward_parameters(self) -> Mapping[str, inspect.Parameter] | None:
        parameters = inspect.signature(self.forward).parameters
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return None
        return parameters

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.forward)

    # -- calling ---------------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Check the arguments and call `forward`; for an async tool this returns a coroutine."""
        return self.forward(**self.bind_arguments(args, kwargs))

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Call from async code: awaited if async, in a worker thread if sync."""
        arguments = self.bind_arguments(args, kwargs)
        if self.is_async:
            return await self.forward(**arguments)
        limiter = self.thread_limiter or default_thread_limiter()
        return await limiter.run(self.forward, **arguments)

    def bind_arguments(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Map positional and keyword arguments onto `inputs` and check their types."""
        names = list(self.inputs)
        if len(args) == 1 and not kwargs and _is_argument_dict(args[0], names):
            kwargs, args = args[0], ()  # tool({"a": 1, "b": 2}), as models often write
        if len(args) > len(names):
            expected = f"{len(names)} argument(s) ({', '.join(names)})"
            raise AgentToolCallError(f"{self.name}() takes {expected}, got {len(args)}")
        bound = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key in bound:
                raise AgentToolCallError(f"{self.name}() got argument {key!r} twice")
            bound[key] = value
        unknown = [k for k in bound if k not in self.inputs]
        if unknown:
            raise AgentToolCallError(f"{self.name}() has no argument(s) {unknown}; it takes {names}")
        for name, spec in self.inputs.items():
            if name not in bound:
                if not spec.get("nullable"):
                    raise AgentToolCallError(f"{self.name}() is missing the required argument {name!r}")
                continue
            _check_type(self.name, name, bound[name], spec)
        return bound

    # -- describing ------------------------------------------------------------------------------

    def to_openai_schema(self) -> dict[str, Any]:
        properties = {
            name: {k: v for k, v in spec.items() if k in ("type", "description", "enum", "items")}
            for name, spec in self.inputs.items()
        }
        for name, spec in self.inputs.items():
            if spec.get("type") == "any":
                properties[name].pop("type")
        required = [name for name, spec in self.inputs.items() if not spec.get("nullable")]
        parameters = {"type": "object", "properties": properties, "required": required}
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": parameters},
        }

    def to_code_prompt(self) -> str:
        """How the tool looks to a CodeAgent: a Python signature with its docstring."""
        arguments = ", ".join(f"{name}: {spec.get('type')}" for name, spec in self.inputs.items())
        docs = "\n".join(f"        {name}: {spec.get('description', '')}" for name, spec in self.inputs.items())
        body = (
            f'    """{self.description}\n\n    Args:\n{docs}\n    """'
            if self.inputs
            else f'    """{self.description}"""'
        )
        return f"def {self.name}({arguments}) -> {self.output_type}:\n{body}"

    def to_dict(self) -> dict[str, Any]:
        """The tool described as data: name, description, inputs, output type, and its source code when
        Python can find it (as smolagents' `to_dict`, without the Hub's requirements list)."""
        source = getattr(self, "_source_object", type(self))
        try:
            code: str | None = textwrap.dedent(inspect.getsource(source))
        except (OSError, TypeError):
            code = None
        return {
            "name": self.name,
            "description": self.description,
            "inputs": copy.deepcopy(self.inputs),
            "output_type": self.output_type,
            "code": code,
        }

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"


def _is_argument_dict(value: Any, names: list[str]) -> bool:
    return isinstance(value, dict) and len(names) != 1 and bool(value) and set(value) <= set(names)


def _check_type(tool: str, name: str, value: Any, spec: Mapping[str, Any]) -> None:
    if value is None and spec.get("nullable"):
        return
    if "enum" in spec and value not in spec["enum"]:
        raise AgentToolCallError(f"{tool}() argument {name!r} must be one of {spec['enum']}, not {value!r:.80}")
    wanted = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    if any(_CHECKS.get(t, lambda _: True)(value) for t in wanted):
        return
    raise AgentToolCallError(
        f"{tool}() argument {name!r} must be of type {' or '.join(wanted)}, not {type(value).__name__} ({value!r:.80})"
    )


class FinalAnswerTool(Tool):
    name = "final_answer"
    description = "Provides the final answer to the task; call it once you have the answer."
    inputs: ClassVar[dict[str, dict[str, Any]]] = {"answer": {"type": "any", "description": "The final answer"}}
    output_type = "any"

    async def forward(self, answer: Any) -> Any:  # async: no thread hop just to return a value
        return answer


# -- @tool -----------------------------------------------------------------------------------------

_PYTHON_TO_JSON: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    tuple: "array",
    dict: "object",
    Any: "any",
    type(None): "null",
}


def tool(function: Callable[..., Any]) -> Tool:
    """Build a `Tool` from a typed function (sync or async); its docstring's `Args:` describes the inputs."""
    description, arg_docs = _parse_docstring(inspect.getdoc(function) or "", function.__name__)
    hints = typing.get_type_hints(function)
    inputs: dict[str, dict[str, Any]] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if name not in hints:
            raise ToolDefinitionError(f"@tool {function.__name__}: parameter {name!r} needs a type hint")
        if name not in arg_docs:
            raise ToolDefinitionError(f"@tool {function.__name__}: describe {name!r} in the docstring's Args: section")
        json_type, nullable = _json_type(hints[name], function.__name__, name)
        spec: dict[str, Any] = {"type": json_type, "description": arg_docs[name]}
        if choices := _literal_choices(hints[name]):
            spec["enum"] = choices
        if nullable or parameter.default is not inspect.Parameter.empty:
            spec["nullable"] = True
        inputs[name] = spec
    output_type = _json_type(hints["return"], function.__name__, "return")[0] if "return" in hints else "any"

    async def forward_async(self: Tool, **kwargs: Any) -> Any:
        return await function(**kwargs)

    def forward_sync(self: Tool, **kwargs: Any) -> Any:
        return function(**kwargs)

    forward = forward_async if inspect.iscoroutinefunction(function) else forward_sync
    attributes = {
        "name": function.__name__,
        "description": description,
        "inputs": inputs,
        "output_type": output_type,
        "forward": forward,
        "_source_object": staticmethod(function),  # what to_dict shows as the tool's code
        "__doc__": function.__doc__,
        "__module__": function.__module__,
    }
    tool_class = type(f"{function.__name__}_tool", (Tool,), attributes)
    return typing.cast(Tool, tool_class())


def _json_type(hint: Any, function: str, name: str) -> tuple[str, bool]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(hint))
        if len(members) == 1:
            return _json_type(members[0], function, name)[0], nullable
        return "any", nullable
    if origin is typing.Literal:
        kinds = {_PYTHON_TO_JSON.get(type(choice), "any") for choice in typing.get_args(hint)}
        return (kinds.pop() if len(kinds) == 1 else "any"), False
    base = origin or hint
    if base in _PYTHON_TO_JSON:
        return _PYTHON_TO_JSON[base], False
    raise ToolDefinitionError(f"@tool {function}: type {hint!r} of {name!r} has no JSON equivalent")


def _literal_choices(hint: Any) -> list[Any]:
    members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return [c for m in members if typing.get_origin(m) is typing.Literal for c in typing.get_args(m)]


def _parse_docstring(doc: str, function: str) -> tuple[str, dict[str, str]]:
    head, _, rest = doc.partition("\nArgs:")
    description = head.strip()
    if not description:
        raise ToolDefinitionError(f"@tool {function}: the docstring must start with a description of the tool")
    args: dict[str, str] = {}
    current = None
    for line in rest.splitlines():
        if not line.strip():
            continue
        if re.match(r"^\S", line):  # a new section (Returns:, Raises:) ends Args
            break
        match = re.match(r"^\s+(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
        if match and (current is None or len(line) - len(line.lstrip()) <= _indent_of(rest)):
            current = match.group(1)
            args[current] = match.group(2).strip()
        elif current is not None:
            args[current] = f"{args[current]} {line.strip()}".strip()
    return description, args


def _indent_of(section: str) -> int:
    for line in section.splitlines():
        if line.strip():
            return len(line) - len(line.lstrip())
    return 0
