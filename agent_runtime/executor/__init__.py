"""The executor behind CodeAgent: model-written Python, checked, rewritten and run on the event loop."""

from ..errors import InterpreterError
from .local import CodeOutput, LocalPythonExecutor, evaluate_python_code
from .parsing import parse_code_blobs
from .runtime import BASE_BUILTIN_MODULES

__all__ = [
    "BASE_BUILTIN_MODULES",
    "CodeOutput",
    "InterpreterError",
    "LocalPythonExecutor",
    "evaluate_python_code",
    "parse_code_blobs",
]
