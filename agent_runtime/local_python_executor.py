"""Where smolagents users import the executor from: `from agent_runtime.local_python_executor import ...`."""

from .errors import InterpreterError
from .executor import BASE_BUILTIN_MODULES, CodeOutput, LocalPythonExecutor, evaluate_python_code

__all__ = ["BASE_BUILTIN_MODULES", "CodeOutput", "InterpreterError", "LocalPythonExecutor", "evaluate_python_code"]
