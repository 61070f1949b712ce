"""Finding the code in a model's answer: ```python fences, ```py fences, or <code> tags."""

from __future__ import annotations

import ast
import re

from ..errors import AgentParsingError

_FENCE = re.compile(r"```(?:python|py)[ \t]*\n(.*?)\n?```", re.DOTALL)
_TAGS = re.compile(r"<code>(.*?)</code>", re.DOTALL)

CODE_FORMAT_HELP = (
    "Write your action as Python code in a block:\n```python\n# your code\nfinal_answer(result)\n```\n"
    "or between <code> and </code> tags."
)


def parse_code_blobs(text: str) -> str:
    """The code of a model answer; several blocks are joined in order."""
    blocks = _FENCE.findall(text) or _TAGS.findall(text)
    if blocks:
        return "\n\n".join(block.strip("\n") for block in blocks)
    stripped = text.strip()
    if stripped:
        try:
            ast.parse(stripped)
        except SyntaxError:
            pass
        else:
            if "\n" in stripped or "(" in stripped:
                return stripped  # bare code without a fence
    raise AgentParsingError(f"No code block was found in the model output.\n{CODE_FORMAT_HELP}")
