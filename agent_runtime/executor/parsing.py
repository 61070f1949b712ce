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


def parse_code_blobs(text: str, code_block_tags: tuple[str, str] | None = None) -> str:
    """The code of a model answer; several blocks are joined in order. `code_block_tags` (opening and
    closing regexes, as smolagents' CodeAgent takes them) are looked for first."""
    custom = re.findall(f"{code_block_tags[0]}(.*?){code_block_tags[1]}", text, re.DOTALL) if code_block_tags else []
    blocks = custom or _FENCE.findall(text) or _TAGS.findall(text)
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
